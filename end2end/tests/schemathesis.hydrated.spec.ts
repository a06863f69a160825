import { test, expect } from "@playwright/test";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { startServer } from "../server";

// Schemathesis (from PyPI) generates requests from Stoa's own OpenAPI document, with a fixed
// budget: no response may be a 5xx, every response must match the documented status
// codes, content types and schemas, a request the document calls valid must be accepted
// and one it calls invalid refused (so the documented constraints are the enforced ones;
// end2end/schemathesis.toml lists the rules a JSON Schema cannot state). Its own server: the generated requests create
// conversations and upload files, which must not ground other tests' answers; the rate
// limits are raised so the requests reach the handlers (limits are tested in Rust).
test("schemathesis finds no server error and no response that breaks the spec", async () => {
  test.setTimeout(420_000);
  const python = process.env.E2E_PYTHON;
  expect(python, "E2E_PYTHON names the venv Python (make test-e2e sets it)").toBeTruthy();
  const st = join(dirname(python!), "st");
  const server = await startServer(3700, undefined, {
    STOA_LIMITS__GENERATIONS_PER_USER: "100000",
    STOA_LIMITS__GENERATIONS_PER_IP: "100000",
    STOA_LIMITS__UPLOADS_PER_USER: "100000",
    STOA_LIMITS__UPLOADS_PER_IP: "100000",
    STOA_LIMITS__IMPORTS_PER_USER: "100000",
    STOA_LIMITS__IMPORTS_PER_IP: "100000",
    STOA_LIMITS__SEARCHES_PER_USER: "100000",
    STOA_LIMITS__SEARCHES_PER_IP: "100000",
    STOA_LIMITS__EMBEDDINGS_PER_USER: "100000",
    STOA_LIMITS__EMBEDDINGS_PER_IP: "100000",
    // Generated addresses must never be resolved or dialled (tests reach loopback only).
    STOA_RAG__FETCH_BY_ADDRESS: "false",
  });
  const base = server.url;
  const config = join(__dirname, "..", "schemathesis.toml");
  const args = [
    "--config-file", config,
    "run", `${base}/api/v1/openapi.json`, "--url", base,
    "--max-examples", "15", "--seed", "1",
    "--checks",
    "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance," +
      "positive_data_acceptance,negative_data_rejection",
    "--request-timeout", "60", "--no-color",
  ];
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(st, args, { timeout: 400_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout + stderr }),
    );
  });
  await server.stop();
  console.log(output.split("\n").slice(-25).join("\n"));
  expect(code, output).toBe(0);
  expect(output).toMatch(/\d+ generated, \d+ passed/);
});
