import { test, expect } from "@playwright/test";
import { startServer } from "../server";
import { lastAssistant, openHydrated, send } from "./helpers";

test("the app hydrates and streams under its Content-Security-Policy, with no violation", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy") || m.text().includes("Content-Security-Policy")) violations.push(m.text());
  });
  const response = await page.goto("/");
  expect(response!.headers()["content-security-policy"]).toContain("'strict-dynamic'");
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  await send(page, "Say hello.", { maxTokens: 16 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await openHydrated(page, "/documents");
  expect(violations).toEqual([]);
});

test("script and HTML in messages and answers never execute or inject elements", async ({ page }) => {
  const dialogs: string[] = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  await openHydrated(page, "/");
  const payload = 'Repeat exactly: <img src=x onerror="alert(1)"><script>alert(2)</script> **bold**';
  await send(page, payload, { maxTokens: 40 });
  const answer = lastAssistant(page);
  await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await expect(page.locator("article.message-user .message-content")).toHaveText(payload);
  await page.reload();
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  expect(await page.locator(".message-content img, .message-content script").count()).toBe(0);
  expect(dialogs).toEqual([]);
});

test("script and HTML in an uploaded document never execute when its passage is shown", async ({ page }) => {
  test.setTimeout(90_000);
  const dialogs: string[] = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  // Its own server: the document must not ground other tests' answers.
  const server = await startServer(3800);
  try {
    await openHydrated(page, server.url + "/documents");
    const text =
      "# Volcano safety\nDuring an eruption of the volcano <img src=x onerror=\"alert('doc')\"> " +
      "<script>alert('doc2')</script> evacuate to the marked shelters uphill.\n";
    await page.setInputFiles("#file", [{ name: "volcano.txt", mimeType: "text/plain", buffer: Buffer.from(text) }]);
    await page.getByRole("button", { name: "Upload" }).click();
    await expect(page.locator('tr.document[data-file="volcano.txt"]')).toHaveAttribute("data-status", "ready", {
      timeout: 60_000,
    });
    await page.locator(".new-chat").click();
    await send(page, "What should I do during a volcano eruption?", { maxTokens: 24 });
    const answer = lastAssistant(page);
    await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    const chip = answer.locator(".citation").first();
    await chip.locator("summary").click();
    await expect(chip.locator(".passage-text")).toContainText("onerror");
    expect(await page.locator(".citation img, .citation script, .message-content img").count()).toBe(0);
    expect(dialogs).toEqual([]);
  } finally {
    await server.stop();
  }
});
