import { test, expect } from "@playwright/test";
import { request as httpRequest } from "node:http";
import { PORT } from "../playwright.config";

// Raw HTTP, so what the server sends (Content-Encoding, sizes, caching) is seen as sent,
// not as a client decoded it.
function get(path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; bytes: number }>(
    (resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port: PORT, path, headers }, (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => (bytes += c.length));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
      });
      req.on("error", reject);
      req.end();
    },
  );
}

test("assets have hashed names, arrive compressed by negotiation and are cached for good; pages are not", async () => {
  const page = await get("/");
  expect(page.status).toBe(200);
  expect(page.headers["cache-control"]).toBe("no-cache");
  const html = await (await fetch(`http://127.0.0.1:${PORT}/`)).text();
  const names = [...html.matchAll(/\/pkg\/(stoa\.[0-9a-f]{16}\.(?:js|wasm|css))/g)].map((m) => m[1]);
  const unique = [...new Set(names)];
  expect(unique.map((n) => n.split(".").pop()).sort()).toEqual(["css", "js", "wasm"]);

  for (const name of unique) {
    const raw = await get(`/pkg/${name}`);
    expect(raw.status).toBe(200);
    expect(raw.headers["content-encoding"]).toBeUndefined();
    expect(raw.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    for (const [accept, encoding] of [["br, gzip", "br"], ["gzip", "gzip"]]) {
      const packed = await get(`/pkg/${name}`, { "accept-encoding": accept });
      expect(packed.status, `${name} with ${accept}`).toBe(200);
      expect(packed.headers["content-encoding"], `${name} with ${accept}`).toBe(encoding);
      expect(packed.headers["vary"]).toContain("accept-encoding");
      expect(packed.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(packed.bytes, `${name} with ${accept}`).toBeLessThan(raw.bytes);
    }
  }
  const wasm = unique.find((n) => n.endsWith(".wasm"))!;
  expect((await get(`/pkg/${wasm}`, { "accept-encoding": "br" })).headers["content-type"]).toBe("application/wasm");

  // The API docs page: its own page revalidated, its scripts hashed and immutable.
  const docs = await get("/docs/index.html", { "accept-encoding": "gzip" });
  expect(docs.status).toBe(200);
  expect(docs.headers["cache-control"]).toBe("no-cache");
  const docsHtml = await (await fetch(`http://127.0.0.1:${PORT}/docs/index.html`)).text();
  const bundle = docsHtml.match(/\/docs\/vendor\/swagger-ui-bundle\.[0-9a-f]{16}\.js/)![0];
  const swagger = await get(bundle, { "accept-encoding": "br" });
  expect(swagger.headers["content-encoding"]).toBe("br");
  expect(swagger.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
});
