import { test, expect } from "@playwright/test";
import { startServer } from "../server";

test("without JavaScript: sign up, send a message with the form, sign out", async ({ page }) => {
  test.setTimeout(90_000);
  const server = await startServer(3600, undefined, { STOA_AUTH__MODE: "accounts" });
  try {
    const base = server.url;
    await page.goto(base + "/signup");
    // Rules are checked by the server, and the error names the field.
    await page.locator("#name").fill("ada lovelace");
    await page.locator("#password").fill("correct horse battery");
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page.locator('[data-field-error="name"]')).toContainText("may only hold letters");
    await page.locator("#name").fill("ada");
    await page.locator("#password").fill("correct horse battery");
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page).toHaveURL(base + "/");

    // The composer form carries the CSRF token in a hidden field.
    await page.locator("#message").fill("Name a colour.");
    await page.getByRole("button", { name: "Send" }).click();
    await expect(page).toHaveURL(/\/c\//, { timeout: 60_000 });
    await expect(page.locator("article.message-user .message-content")).toHaveText("Name a colour.");
    await expect(page.locator("article.message-assistant")).toHaveAttribute("data-status", "complete");

    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(base + "/signin");
    await page.locator("#name").fill("ada");
    await page.locator("#password").fill("wrong password!");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.locator('[data-field-error="password"]')).toContainText("wrong user name or password");
  } finally {
    await server.stop();
  }
});
