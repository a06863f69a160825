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
