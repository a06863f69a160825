import { test, expect } from "@playwright/test";
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
