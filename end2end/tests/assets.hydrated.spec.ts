import { test, expect } from "@playwright/test";
import { request as httpRequest } from "node:http";
import { PORT } from "../playwright.config";
import { openHydrated } from "./helpers";

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

test("the pages a first visit does not need are chunks of the bundle, fetched when shown and preloaded with their HTML", async ({ page }) => {
  const wasm: string[] = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.endsWith(".wasm")) wasm.push(path);
  });
  await openHydrated(page, "/");
  // The chat page: the main module alone.
  expect(wasm.filter((p) => !/^\/pkg\/stoa\.[0-9a-f]{16}\.wasm$/.test(p))).toEqual([]);

  // Another page, by the router: its chunk arrives, hashed, compressed and cached for good.
  await page.locator("a.documents-link").click();
  await expect(page.getByRole("heading", { name: "Documents", level: 1 })).toBeVisible();
  const chunks = wasm.filter((p) => /^\/pkg\/(split|chunk)_[\w]+\.[0-9a-f]{16}\.wasm$/.test(p));
  expect(chunks.length).toBeGreaterThan(0);
  for (const chunk of chunks) {
    const packed = await get(chunk, { "accept-encoding": "br" });
    expect(packed.status).toBe(200);
    expect(packed.headers["content-encoding"]).toBe("br");
    expect(packed.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
  }

  // The same page as the first one: the HTML names its chunks, so they load with the bundle.
  const html = await (await fetch(`http://127.0.0.1:${PORT}/documents`)).text();
  const links = [...html.matchAll(/<link [^>]*>/g)].map((m) => m[0]);
  const preloaded = links
    .filter((l) => l.includes('rel="preload"'))
    .map((l) => l.match(/href="(\/pkg\/(?:split|chunk)_[^"]+\.wasm)"/)?.[1])
    .filter((href) => href !== undefined);
  expect(preloaded.some((href) => href!.startsWith("/pkg/split___documents_route_view_"))).toBe(true);
  wasm.length = 0;
  await openHydrated(page, "/documents");
  await expect(page.getByRole("heading", { name: "Documents", level: 1 })).toBeVisible();
  for (const href of preloaded) expect(wasm).toContain(href);
  // The split loader the main module imports: hashed, cached for good.
  const js = await (await fetch(`http://127.0.0.1:${PORT}${html.match(/\/pkg\/stoa\.[0-9a-f]{16}\.js/)![0]}`)).text();
  const loader = js.match(/__wasm_split\.[0-9a-f]{22}\.js/);
  expect(loader).not.toBeNull();
  expect((await get(`/pkg/${loader![0]}`, { "accept-encoding": "gzip" })).headers["cache-control"]).toBe(
    "public, max-age=31536000, immutable",
  );
});
