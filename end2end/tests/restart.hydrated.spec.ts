import { test, expect } from "@playwright/test";
import { startServer } from "../server";
import { lastAssistant, openHydrated, send } from "./helpers";

test("history survives a server restart", async ({ page }) => {
  const port = 3150;
  let server = await startServer(port);
  const dataDir = server.dataDir;
  try {
    await openHydrated(page, server.url + "/");
    await send(page, "What is the capital of France?", { maxTokens: 40 });
    await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    const answer = (await lastAssistant(page).locator(".message-content").textContent()) ?? "";
    const url = page.url();

    expect(await server.stop()).toBe(0); // graceful shutdown exits cleanly
    server = await startServer(port, dataDir);

    await openHydrated(page, server.url + "/");
    await expect(page.locator(".conversation-link")).toHaveText(["What is the capital of France?"]);
    await page.locator(".conversation-link").first().click();
    await expect(page).toHaveURL(url);
    await expect(page.locator("article.message-user .message-content")).toHaveText("What is the capital of France?");
    await expect(lastAssistant(page).locator(".message-content")).toHaveText(answer);
    await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete");
  } finally {
    await server.stop();
  }
});
