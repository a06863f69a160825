// Screenshots of the main screens for the README (make screenshots): a real server, the
// embedded model, Debian Chromium. Writes end2end/screenshots/*.png.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "@playwright/test";
import { startStoa } from "./stoa-process.mjs";

const [bin, siteRoot] = process.argv.slice(2);
const out = (name) => join(import.meta.dirname, "screenshots", `${name}.png`);

const start = (port, env = {}) => startStoa({ bin, siteRoot, port, env });

async function ask(page, text, maxTokens) {
  const details = page.locator("details.params");
  if ((await details.getAttribute("open")) === null) await details.locator("summary").click();
  await page.locator("#temperature").fill("0");
  await page.locator("#max_tokens").fill(String(maxTokens));
  await details.locator("summary").click();
  await page.locator("#message").fill(text);
  await page.locator("#message").press("Enter");
  await page.waitForFunction(() => {
    const all = document.querySelectorAll("article.message-assistant");
    const last = all[all.length - 1];
    return last && last.getAttribute("data-status") !== "streaming";
  }, null, { timeout: 120_000 });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const { base, child } = await start(3960);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.emulateMedia({ colorScheme: "light" });
  await page.goto(base + "/");
  await page.waitForSelector('.app[data-hydrated="true"]');
  await ask(page, "Write a Python function that adds two numbers, with a short explanation.", 160);
  await page.screenshot({ path: out("chat-light") });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: out("chat-dark") });
  await page.emulateMedia({ colorScheme: "light" });

  // Documents and an answer with its sources.
  await page.goto(base + "/documents");
  await page.waitForSelector('.app[data-hydrated="true"]');
  const fixtures = join(import.meta.dirname, "..", "src", "server", "tests", "fixtures");
  await page.setInputFiles("#file", [
    { name: "handbook.md", mimeType: "text/markdown", buffer: readFileSync(join(fixtures, "handbook.md")) },
  ]);
  await page.getByRole("button", { name: "Upload" }).click();
  await page.waitForSelector('tr.document[data-status="ready"]', { timeout: 120_000 });
  await page.screenshot({ path: out("documents") });
  await page.locator(".new-chat").click();
  await ask(page, "How many days of paid holiday do employees get?", 48);
  await page.locator("article.message-assistant .citation summary").first().click();
  await page.screenshot({ path: out("citations") });

  await page.goto(base + "/search?q=holiday");
  await page.waitForSelector(".search-hit");
  await page.screenshot({ path: out("search") });

  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await phone.goto(base + "/");
  await phone.waitForSelector('.app[data-hydrated="true"]');
  await phone.screenshot({ path: out("phone") });
} finally {
  child.kill("SIGTERM");
}
const accounts = await start(3970, { STOA_AUTH__MODE: "accounts" });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(accounts.base + "/signup");
  await page.screenshot({ path: out("signup") });
  await page.fill("#name", "ada");
  await page.fill("#password", "correct horse battery");
  await page.click("button[type=submit]");
  await page.waitForURL(accounts.base + "/");
  await page.goto(accounts.base + "/account");
  await page.waitForSelector('.app[data-hydrated="true"]');
  await page.fill("#key-name", "laptop script");
  await page.getByRole("button", { name: "Create key" }).click();
  await page.waitForSelector(".new-key-secret");
  await page.screenshot({ path: out("account") });
} finally {
  accounts.child.kill("SIGTERM");
  await browser.close();
}
