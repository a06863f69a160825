import { test, expect, Page } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { lastAssistant, openHydrated, send } from "./helpers";

/** axe-core's serious and critical findings (WCAG 2.1 A/AA, contrast included). */
async function violations(page: Page) {
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

test("the main screens pass axe in light and dark themes", async ({ page }) => {
  test.setTimeout(90_000);
  await openHydrated(page);
  await send(page, "Name a colour.", { maxTokens: 8 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const conversation = page.url();
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const path of ["/", conversation, "/documents", "/search?q=colour", "/account"]) {
      await openHydrated(page, path);
      expect(await violations(page), `${scheme} ${path}`).toEqual([]);
    }
  }
});

test("keyboard only: skip to the message box, send with Enter, one announcement per answer", async ({ page }) => {
  await openHydrated(page);
  await page.evaluate(() => {
    const w = window as unknown as { __announced: string[] };
    w.__announced = [];
    new MutationObserver(() => {
      const text = document.querySelector(".announcer")?.textContent ?? "";
      if (text && w.__announced[w.__announced.length - 1] !== text) w.__announced.push(text);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  // The first Tab reaches the skip link; following it puts the focus in the message box.
  await page.keyboard.press("Tab");
  await expect(page.locator(".skip-link")).toBeFocused();
  await page.keyboard.press("Enter");
  await expect(page.locator("#message")).toBeFocused();
  await page.keyboard.type("Say hello.");
  await page.keyboard.press("Enter");
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await expect(page.locator(".announcer")).toContainText("Answer finished:");
  const announced = await page.evaluate(() => (window as unknown as { __announced: string[] }).__announced);
  // Streaming tokens are not announced: one message, when the answer is done.
  expect(announced.length).toBe(1);
  // While it streamed the answer was marked busy; now it is not.
  await expect(lastAssistant(page)).toHaveAttribute("aria-busy", "false");
  // Edit by keyboard: the box opens with the focus in it; Escape closes it.
  await page.locator("article.message-user .edit").focus();
  await page.keyboard.press("Enter");
  await expect(page.locator(".edit-text")).toBeFocused();
  await page.keyboard.press("Escape");
  await expect(page.locator(".edit-text")).toHaveCount(0);
});

test("the theme switch is kept across reloads and changes the colours", async ({ page }) => {
  await page.emulateMedia({ colorScheme: "light" });
  await openHydrated(page);
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await background();
  const toggle = page.locator(".theme-toggle");
  await expect(toggle).toHaveText("Theme: system");
  await toggle.click(); // light
  await toggle.click(); // dark
  await expect(toggle).toHaveText("Theme: dark");
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  expect(await background()).not.toBe(light);
  // Rendered dark by the server on the next load (no flash of the light theme).
  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  await expect(toggle).toHaveText("Theme: dark");
  await toggle.click(); // back to the system's
  await expect(page.locator("html")).not.toHaveAttribute("data-theme", /.+/);
});

test("usable on a phone-sized screen", async ({ browser }) => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await openHydrated(page, "/");
  await send(page, "Name a fruit.", { maxTokens: 8 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  // Nothing is wider than the screen; the message box and Send are on it.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  for (const selector of ["#message", "button.send"]) {
    const box = await page.locator(selector).boundingBox();
    expect(box!.x).toBeGreaterThanOrEqual(0);
    expect(box!.x + box!.width).toBeLessThanOrEqual(390);
  }
  await page.screenshot({ path: "test-results/phone.png", fullPage: true });
  await context.close();
});
