// The chat page's first load as a browser gets it from the release build `make run`
// serves (target/release/stoa + target/site): bytes on the wire per page, summed from
// Chromium's own network events (Network.loadingFinished: encodedDataLength, i.e. headers
// and body as transferred, compressed where the server compressed), and the time from
// navigation to interactive (hydrated), over loopback and with Chromium's network emulation
// at 10 Mbit/s and 40 ms latency; cold (a new browser context, nothing cached) and warm
// (the same context again: what the cache keeps).
//
// Usage (make bench-frontend): node bench/frontend.mjs <stoa binary> <site root> <output.md>
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { startStoa } from "../end2end/stoa-process.mjs";

const require = createRequire(join(process.cwd(), "end2end", "package.json"));
const { chromium } = require("@playwright/test");
const [bin, site, output] = process.argv.slice(2);
const PORT = 3980;
const BASE = `http://127.0.0.1:${PORT}`;
const RUNS = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const NETWORKS = {
  loopback: null,
  "10 Mbit/s, 40 ms": { offline: false, latency: 40, downloadThroughput: (10e6 / 8), uploadThroughput: (10e6 / 8) },
};

const { child: server } = await startStoa({ bin, siteRoot: site, port: PORT });

const messages = Array.from({ length: 20 }, (_, i) => ({
  id: `m${i}`,
  parent_id: i ? `m${i - 1}` : null,
  role: i % 2 ? "assistant" : "user",
  status: "complete",
  content: i % 2 ? `An answer with **Markdown** and \`code\`, number ${i}.` : `Question ${i}?`,
}));
const imported = await fetch(BASE + "/api/v1/import", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ stoa_export: 1, conversations: [{ id: "c", title: "Twenty messages", messages }] }),
}).then((r) => r.json());
const pages = { "new chat (/)": "/", "conversation (20 messages)": `/c/${imported[0].id}` };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});

/** Loads `path` in `page` until hydrated; returns ms and the bytes on the wire by kind. */
async function load(page, cdp, path) {
  const requests = new Map();
  const bytes = { document: 0, wasm: 0, script: 0, stylesheet: 0, other: 0 };
  const onResponse = (e) => requests.set(e.requestId, e);
  const onFinished = (e) => {
    const r = requests.get(e.requestId);
    const url = r?.response.url ?? "";
    const kind = url.endsWith(".wasm") ? "wasm"
      : r?.type === "Document" ? "document"
      : r?.type === "Script" || url.endsWith(".js") ? "script"
      : r?.type === "Stylesheet" ? "stylesheet" : "other";
    bytes[kind] += e.encodedDataLength;
  };
  cdp.on("Network.responseReceived", onResponse);
  cdp.on("Network.loadingFinished", onFinished);
  const started = Date.now();
  await page.goto(BASE + path);
  await page.waitForSelector('.app[data-hydrated="true"]');
  const ms = Date.now() - started;
  await page.waitForLoadState("networkidle");
  cdp.off("Network.responseReceived", onResponse);
  cdp.off("Network.loadingFinished", onFinished);
  return { ms, bytes };
}

async function session(network) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  if (network) await cdp.send("Network.emulateNetworkConditions", network);
  return { context, page, cdp };
}

const rows = [];
try {
  for (const [net, conditions] of Object.entries(NETWORKS)) {
    for (const [name, path] of Object.entries(pages)) {
      const cold = [];
      let coldBytes;
      for (let r = 0; r < RUNS; r++) {
        const s = await session(conditions);
        const got = await load(s.page, s.cdp, path);
        cold.push(got.ms);
        coldBytes = got.bytes;
        await s.context.close();
      }
      const s = await session(conditions);
      await load(s.page, s.cdp, path);
      const warm = [];
      let warmBytes;
      for (let r = 0; r < RUNS; r++) {
        const got = await load(s.page, s.cdp, path);
        warm.push(got.ms);
        warmBytes = got.bytes;
      }
      await s.context.close();
      rows.push({ net, name, cold: median(cold), warm: median(warm), coldBytes, warmBytes });
    }
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
}

const kb = (n) => (n / 1024).toFixed(0);
const sum = (b) => Object.values(b).reduce((a, x) => a + x, 0);
const lines = [
  "# Frontend first load (bench/frontend.mjs)",
  "",
  `Run on ${new Date().toISOString().slice(0, 10)}, 2 cores, Debian Chromium headless. The release build as \`make run\` serves it (wasm-release, --cfg erase_components, wasm-opt -Oz, brotli/gzip copies, hashed immutable assets, the bundle split at its pages: a page's chunks count in its wasm column). Bytes on the wire are Chromium's encodedDataLength per request (headers + body as transferred). Times are medians of ${RUNS} loads, navigation to hydrated; cold = a new browser context, warm = the same context again.`,
  "",
  "| network | page | cold KB on the wire (document / wasm / js / css / other) | warm KB on the wire | cold ms | warm ms |",
  "| --- | --- | ---: | ---: | ---: | ---: |",
  ...rows.map((r) => {
    const b = r.coldBytes;
    return `| ${r.net} | ${r.name} | ${kb(sum(b))} (${kb(b.document)} / ${kb(b.wasm)} / ${kb(b.script)} / ${kb(b.stylesheet)} / ${kb(b.other)}) | ${kb(sum(r.warmBytes))} | ${r.cold} | ${r.warm} |`;
  }),
  "",
  "Target (issue 16): first load of the chat page at most 250 KB on the wire.",
  "",
];
writeFileSync(output, lines.join("\n"));
console.log(lines.join("\n"));
