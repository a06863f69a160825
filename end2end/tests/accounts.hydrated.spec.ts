import { test, expect, Browser, Page } from "@playwright/test";
import { startServer } from "../server";
import { lastAssistant, openHydrated, send, signUp } from "./helpers";

async function newUser(browser: Browser, base: string, name: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await signUp(page, base, name);
  return page;
}

test("accounts: sign up, chat, API keys, privacy between users, admin, sign out", async ({ browser }) => {
  test.setTimeout(120_000);
  const server = await startServer(3500, undefined, { STOA_AUTH__MODE: "accounts" });
  try {
    const base = server.url;
    const ada = await newUser(browser, base, "ada");
    // Chat streams as before: server functions carry the session's CSRF token.
    await send(ada, "What is the capital of France?", { maxTokens: 24 });
    await expect(lastAssistant(ada)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    await expect(ada).toHaveURL(/\/c\//);
    const conversation = ada.url();

    // An API key: shown once, works for programs, stops working when revoked.
    await ada.locator(".account-link").click();
    await ada.locator("#key-name").fill("e2e script");
    await ada.getByRole("button", { name: "Create key" }).click();
    const secret = (await ada.locator(".new-key-secret code").textContent())!.trim();
    expect(secret).toMatch(/^stoa_/);
    await expect(ada.locator("tr.key-row")).toContainText("e2e script");
    const models = () => fetch(base + "/v1/models", { headers: { authorization: `Bearer ${secret}` } });
    expect((await models()).status).toBe(200);
    expect((await fetch(base + "/v1/models")).status).toBe(401);
    await ada.locator("tr.key-row .revoke").click();
    await expect(ada.locator("tr.key-row")).toHaveCount(0);
    expect((await models()).status).toBe(401);

    // Another user sees none of ada's conversations, not even by address.
    const bob = await newUser(browser, base, "bob");
    await expect(bob.locator(".conversation-link")).toHaveCount(0);
    await bob.goto(conversation);
    await expect(bob.locator(".page-error")).toContainText("not found");
    await expect(bob.locator("article.message")).toHaveCount(0);
    // Not an admin.
    expect((await bob.goto(base + "/admin"))!.status()).toBe(403);

    // The admin (the first account) disables bob: his session ends.
    await openHydrated(ada, base + "/admin");
    const row = ada.locator('tr.user-row[data-user="bob"]');
    await row.locator(".toggle-user").click();
    await expect(row).toContainText("disabled");
    await bob.goto(base + "/");
    await expect(bob).toHaveURL(base + "/signin");

    // Sign out: back to the sign-in page, and the pages are closed again.
    await openHydrated(ada, base + "/");
    await ada.getByRole("button", { name: "Sign out" }).click();
    await expect(ada).toHaveURL(base + "/signin");
    await ada.goto(conversation);
    await expect(ada).toHaveURL(base + "/signin");
    await ada.screenshot({ path: "test-results/signin.png" });
  } finally {
    await server.stop();
  }
});
