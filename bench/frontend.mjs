// The chat page's frontend: gzip sizes of the release bundle (bench/bundle.sh builds it
// into target/bundle-site) and the time from navigation to interactive (hydrated) in
// headless Chromium, cold (a new browser context, nothing cached) and warm (cached), for
// the new-chat page and a conversation of 20 messages.
//
// Usage (make bench-frontend): node bench/frontend.mjs <stoa binary> <output.md>
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { createRequire } from "node:module";
import { startStoa } from "../end2end/stoa-process.mjs";

const require = createRequire(join(process.cwd(), "end2end", "package.json"));
const { chromium } = require("@playwright/test");
const [bin, output] = process.argv.slice(2);
const site = join(process.cwd(), "target", "bundle-site");
const PORT = 3980;
const BASE = `http://127.0.0.1:${PORT}`;
const RUNS = 9;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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
async function interactive(page, path) {
  const started = Date.now();
  await page.goto(BASE + path);
  await page.waitForSelector('.app[data-hydrated="true"]');
  return Date.now() - started;
}
const rows = [];
try {
  for (const [name, path] of Object.entries(pages)) {
    const cold = [];
    for (let r = 0; r < RUNS; r++) {
      const context = await browser.newContext();
      cold.push(await interactive(await context.newPage(), path));
      await context.close();
    }
    const context = await browser.newContext();
    const page = await context.newPage();
    await interactive(page, path);
    const warm = [];
    for (let r = 0; r < RUNS; r++) warm.push(await interactive(page, path));
    await context.close();
    rows.push({ name, cold: median(cold), warm: median(warm) });
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
}

const kb = (file) => {
  const bytes = readFileSync(join(site, "pkg", file));
  return { raw: bytes.length / 1024, gz: gzipSync(bytes, { level: 9 }).length / 1024 };
};
const sizes = { wasm: kb("stoa.wasm"), js: kb("stoa.js"), css: kb("stoa.css") };
const total = sizes.wasm.gz + sizes.js.gz + sizes.css.gz;
const f = (x) => x.toFixed(0);
const lines = [
  "# Frontend (bench/bundle.sh, bench/frontend.mjs)",
  "",
  `Run on ${new Date().toISOString().slice(0, 10)}, 2 cores, Debian Chromium headless, over loopback. The release bundle as \`make run\` builds it (profile wasm-release, --cfg erase_components, wasm-opt -Oz; served by the debug server binary, which renders the same HTML); times are medians of ${RUNS} loads, navigation to hydrated.`,
  "",
  "| file | raw KB | gzip -9 KB |",
  "| --- | ---: | ---: |",
  ...Object.entries(sizes).map(([k, v]) => `| ${k} | ${f(v.raw)} | ${f(v.gz)} |`),
  `| total | ${f(sizes.wasm.raw + sizes.js.raw + sizes.css.raw)} | ${f(total)} |`,
  "",
  "| page | cold: new context, nothing cached (ms) | warm: cached (ms) |",
  "| --- | ---: | ---: |",
  ...rows.map((r) => `| ${r.name} | ${r.cold} | ${r.warm} |`),
  "",
];
writeFileSync(output, lines.join("\n"));
console.log(lines.join("\n"));
