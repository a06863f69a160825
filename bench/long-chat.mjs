// Long chats stay fast: a 1,000-message conversation against a 10-message one, side by side
// in one run, in Debian Chromium (Playwright). For each: how long the page takes to open
// (first byte, DOM ready, hydrated) and, while a new answer streams, which DOM nodes change:
// only the streaming answer should, never the rest of the history.
//
// Usage (make bench-long-chat): node bench/long-chat.mjs <stoa binary> <site root> <output.md>
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";
import { startStoa } from "../end2end/stoa-process.mjs";

const require = createRequire(join(process.cwd(), "end2end", "package.json"));
const { chromium } = require("@playwright/test");

const [bin, siteRoot, output] = process.argv.slice(2);
const PORT = 3950;
const BASE = `http://127.0.0.1:${PORT}`;
const RUNS = 7;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** A conversation of `n` messages (questions and Markdown answers), imported through the API. */
async function seed(n) {
  const messages = [];
  for (let i = 0; i < n; i++) {
    const user = i % 2 === 0;
    messages.push({
      id: `m${i}`,
      parent_id: i ? `m${i - 1}` : null,
      role: user ? "user" : "assistant",
      status: "complete",
      content: user
        ? `Question ${i}: how does step ${i} of the process work?`
        : `Step **${i}** works like this:\n\n- it reads the input\n- it checks it\n- it writes \`out_${i}\`\n\n\`\`\`python\ndef step_${i}(x):\n    return x + ${i}\n\`\`\`\n`,
      created_at: 1_700_000_000_000 + i,
    });
  }
  const res = await fetch(BASE + "/api/v1/import", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ stoa_export: 1, conversations: [{ id: "c", title: `${n} messages`, messages }] }),
  });
  if (res.status !== 201) throw new Error(`import failed: ${res.status} ${await res.text()}`);
  return (await res.json())[0].id;
}

async function open(page, id) {
  const started = Date.now();
  await page.goto(`${BASE}/c/${id}`);
  await page.waitForSelector('.app[data-hydrated="true"]');
  const hydrated = Date.now() - started;
  const nav = await page.evaluate(() => {
    const t = performance.getEntriesByType("navigation")[0];
    return { ttfb: t.responseStart - t.startTime, dom: t.domContentLoadedEventEnd - t.startTime, bytes: t.transferSize };
  });
  return { ...nav, hydrated };
}

/** Streams one answer and records which nodes change where, and the main thread's long tasks. */
async function stream(page, id) {
  await page.goto(`${BASE}/c/${id}`);
  await page.waitForSelector('.app[data-hydrated="true"]');
  await page.evaluate(() => {
    const w = window;
    w.__outside = 0;
    w.__inside = 0;
    w.__longTasks = 0;
    w.__blocking = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        w.__longTasks += 1;
        w.__blocking += Math.max(0, e.duration - 50);
      }
    }).observe({ type: "longtask", buffered: false });
    const history = document.querySelector(".messages");
    new MutationObserver((records) => {
      // The question and the answer being written are the last two messages.
      const fresh = new Set([...document.querySelectorAll("article.message")].slice(-2));
      for (const r of records) {
        const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
        const article = node?.closest("article.message");
        const appended =
          node === history && r.removedNodes.length === 0 && [...r.addedNodes].every((n) => n.nodeType !== 1 || fresh.has(n));
        if ((article && fresh.has(article)) || appended) w.__inside += 1;
        else w.__outside += 1;
      }
    }).observe(history, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const details = page.locator("details.params");
  if ((await details.getAttribute("open")) === null) await details.locator("summary").click();
  await page.locator("#temperature").fill("0");
  await page.locator("#max_tokens").fill("64");
  await page.locator("#message").fill("Summarise the process in one sentence.");
  const before = await page.locator("article.message").count();
  const started = Date.now();
  await page.locator("#message").press("Enter");
  await page.waitForFunction(
    (n) => {
      const all = document.querySelectorAll("article.message");
      return all.length === n + 2 && all[all.length - 1].getAttribute("data-status") === "complete";
    },
    before,
    { timeout: 120_000 },
  );
  const ms = Date.now() - started;
  const usage = (await page.locator("article.message-assistant").last().locator(".message-usage").textContent()) ?? "";
  const prompt = Number(/(\d+) prompt/.exec(usage)?.[1] ?? NaN);
  const ttft = Number(/first token (\d+) ms/.exec(usage)?.[1] ?? NaN);
  const counts = await page.evaluate(() => ({
    outside: window.__outside,
    inside: window.__inside,
    longTasks: window.__longTasks,
    blocking: window.__blocking,
  }));
  return { ...counts, ms, prompt, ttft };
}

const { child: server } = await startStoa({ bin, siteRoot, port: PORT });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const rows = [];
try {
  const sizes = [10, 1000];
  const ids = {};
  for (const n of sizes) ids[n] = await seed(n);
  const page = await browser.newPage();
  for (const n of sizes) await open(page, ids[n]); // warm-up
  const opened = Object.fromEntries(sizes.map((n) => [n, []]));
  // Interleaved, so both sizes see the same machine.
  for (let r = 0; r < RUNS; r++) for (const n of sizes) opened[n].push(await open(page, ids[n]));
  for (const n of sizes) {
    const s = await stream(page, ids[n]);
    const o = opened[n];
    rows.push({
      n,
      ttfb: median(o.map((x) => x.ttfb)),
      dom: median(o.map((x) => x.dom)),
      hydrated: median(o.map((x) => x.hydrated)),
      kb: median(o.map((x) => x.bytes)) / 1024,
      ...s,
    });
  }
} finally {
  await browser.close();
  server.kill("SIGTERM");
}

const fmt = (x) => x.toFixed(0);
const lines = [
  "# Long chats (bench/long-chat.mjs)",
  "",
  `Run on ${new Date().toISOString().slice(0, 10)}, 2 cores, Debian Chromium headless; the server built as \`make test-e2e\` builds it (Stoa's code unoptimised, llama.cpp optimised). Open times are medians of ${RUNS} interleaved loads after a warm-up; the stream is one 64-token answer.`,
  "",
  "| messages | first byte ms | DOM ready ms | hydrated ms | page KB | answer ms | prompt tokens | model's first token ms | history nodes changed while streaming | changes inside the new answer | long tasks (blocking ms) |",
  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map(
    (r) =>
      `| ${r.n} | ${fmt(r.ttfb)} | ${fmt(r.dom)} | ${fmt(r.hydrated)} | ${fmt(r.kb)} | ${fmt(r.ms)} | ${r.prompt} | ${r.ttft} | ${r.outside} | ${r.inside} | ${r.longTasks} (${fmt(r.blocking)}) |`,
  ),
  "",
  `Ratio 1000 / 10 messages: first byte ${(rows[1].ttfb / rows[0].ttfb).toFixed(1)}x, hydrated ${(rows[1].hydrated / rows[0].hydrated).toFixed(1)}x, answer ${(rows[1].ms / rows[0].ms).toFixed(2)}x.`,
  "",
];
writeFileSync(output, lines.join("\n"));
console.log(lines.join("\n"));
