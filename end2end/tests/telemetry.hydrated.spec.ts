// OpenTelemetry export from the real process: with the standard OTEL_* variables set, the
// spans of a request (with its request id) reach an OTLP/HTTP receiver, flushed at the
// latest when the process stops.
import { test, expect } from "@playwright/test";
import { createServer, IncomingMessage } from "node:http";
import { AddressInfo } from "node:net";
import { startServer } from "../server";

interface Export {
  path: string;
  contentType: string;
  body: Buffer;
}

test("traces are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set", async () => {
  const received: Export[] = [];
  const collector = createServer((req: IncomingMessage, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", contentType: req.headers["content-type"] ?? "", body: Buffer.concat(parts) });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((ready) => collector.listen(0, "127.0.0.1", ready));
  const port = (collector.address() as AddressInfo).port;
  const server = await startServer(3910, undefined, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
    OTEL_SERVICE_NAME: "stoa-e2e",
  });
  try {
    const res = await fetch(server.url + "/api/v1/models", { headers: { "x-request-id": "trace-me-0042" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("trace-me-0042");
  } finally {
    expect(await server.stop()).toBe(0); // shutdown flushes what is still batched
    collector.close();
  }
  expect(received.length).toBeGreaterThan(0);
  expect(received.every((r) => r.path === "/v1/traces")).toBe(true);
  expect(received[0].contentType).toBe("application/x-protobuf");
  const all = Buffer.concat(received.map((r) => r.body)).toString("latin1");
  expect(all).toContain("stoa-e2e"); // the service name
  expect(all).toContain("trace-me-0042"); // the request's span, with its id
  expect(all).toContain("/api/v1/models");
});
