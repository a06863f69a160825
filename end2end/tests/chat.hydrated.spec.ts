import { test, expect } from "@playwright/test";
import { answerLengths, lastAssistant, openHydrated, send, watchAnswerLengths } from "./helpers";

test("an answer streams in token by token and is stored with its usage", async ({ page }) => {
  await openHydrated(page);
  await watchAnswerLengths(page);
  await send(page, "Write a short poem about the sea.", { maxTokens: 80 });

  await expect(page).toHaveURL(/\/c\/[0-9a-f-]+$/);
  const answer = lastAssistant(page);
  await expect(answer).toHaveAttribute("data-status", "streaming");
  await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });

  const lengths = await answerLengths(page);
  const final = (await answer.locator(".message-content").textContent()) ?? "";
  expect(final.length).toBeGreaterThan(20);
  // Several partial states were on screen before the final text, each longer than the last.
  expect(lengths.length).toBeGreaterThanOrEqual(5);
  for (let i = 1; i < lengths.length; i++) expect(lengths[i]).toBeGreaterThan(lengths[i - 1]);
  const finalLength = Number(await answer.getAttribute("data-length"));
  expect(lengths[0]).toBeLessThan(finalLength);
  expect(lengths[lengths.length - 1]).toBe(finalLength);

  // Usage and timings are shown under the answer.
  await expect(answer.locator(".message-usage")).toContainText("tok/s");
  await expect(answer.locator(".message-usage")).toContainText("first token");
  // The user's message is there, and the sidebar lists the conversation by its title.
  await expect(page.locator("article.message-user .message-content")).toHaveText("Write a short poem about the sea.");
  await expect(page.locator(".conversation-link").first()).toHaveText("Write a short poem about the sea.");

  await page.screenshot({ path: "test-results/chat.png" });
});

test("Stop ends the answer at once and the partial answer survives a reload", async ({ page }) => {
  await openHydrated(page);
  await send(page, "Tell me a very long story about a brave knight and a dragon.", { maxTokens: 1500 });
  const answer = lastAssistant(page);
  await expect(answer).toHaveAttribute("data-status", "streaming");
  await expect
    .poll(async () => ((await answer.locator(".message-content").textContent()) ?? "").length)
    .toBeGreaterThan(30);
  await page.screenshot({ path: "test-results/mid-stream.png" });

  await page.getByRole("button", { name: "Stop" }).click();
  await expect(answer).toHaveAttribute("data-status", "stopped");
  await expect(answer.locator(".message-status")).toContainText("stopped");
  const partial = ((await answer.locator(".message-content").textContent()) ?? "").trim();
  expect(partial.length).toBeGreaterThan(30);
  // It really stopped: the text no longer grows.
  await page.waitForTimeout(700);
  expect(((await answer.locator(".message-content").textContent()) ?? "").trim()).toBe(partial);
  await expect(page.getByRole("button", { name: "Send" })).toBeEnabled();

  await page.reload();
  const reloaded = lastAssistant(page);
  await expect(reloaded).toHaveAttribute("data-status", "stopped");
  expect(((await reloaded.locator(".message-content").textContent()) ?? "").trim()).toBe(partial);
  // Far fewer tokens than asked for were generated.
  await expect(reloaded.locator(".message-usage")).not.toContainText("1500 answer tokens");
});

test("an over-long message is rejected next to the field and nothing is sent", async ({ page }) => {
  await openHydrated(page);
  const sent: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/")) sent.push(r.url());
  });
  const tooLong = "a".repeat(16_001);
  await page.locator("#message").fill(tooLong);
  await page.locator("#message").press("Enter");

  const error = page.locator('[data-field-error="message"]');
  await expect(error).toBeVisible();
  await expect(error).toContainText("16001 characters");
  await expect(error).toContainText("16000");
  await expect(page.locator("#message")).toHaveAttribute("aria-invalid", "true");
  await expect(page.locator(".char-count")).toHaveClass(/over/);
  // The text is kept, no request left the page, and we are still on the new-chat page.
  await expect(page.locator("#message")).toHaveValue(tooLong);
  await page.waitForTimeout(300);
  expect(sent).toEqual([]);
  await expect(page).toHaveURL(/\/$/);
});

test("out-of-range parameters are rejected next to their fields", async ({ page }) => {
  await openHydrated(page);
  await page.locator("details.params summary").click();
  await page.locator("#temperature").fill("3");
  await page.locator("#max_tokens").fill("0");
  await page.locator("#message").fill("hello");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.locator('[data-field-error="temperature"]')).toContainText("between 0 and 2");
  await expect(page.locator('[data-field-error="max_tokens"]')).toContainText("between 1 and 8192");
  await expect(page).toHaveURL(/\/$/);
});

test("a prompt that does not fit the context window is rejected by the server, nothing stored", async ({ page }) => {
  await openHydrated(page);
  // Valid for the form (max_tokens <= 8192) but more than the model's 4096-token window.
  await send(page, "Hello there", { maxTokens: 8000 });
  await expect(page).toHaveURL(/\/c\//);
  const error = page.locator('[data-field-error="max_tokens"]');
  await expect(error).toContainText("context window");
  await expect(page.locator("#message")).toHaveValue("Hello there");
  await expect(page.locator("article.message")).toHaveCount(0);
});

test("a conversation is renamed, deleted, and brought back with Undo", async ({ page }) => {
  await openHydrated(page);
  await send(page, "Name a colour.", { maxTokens: 8 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const item = page.locator(".conversation-item").first();
  await item.getByRole("button", { name: "Rename" }).click();
  await item.locator(".rename-input").fill("Colours");
  await item.locator(".rename-input").press("Enter");
  await expect(page.locator(".conversation-link").first()).toHaveText("Colours");

  await page.locator(".conversation-item").first().getByRole("button", { name: "Delete" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator(".undo")).toContainText("Deleted “Colours”");
  await expect(page.locator(".conversation-link", { hasText: "Colours" })).toHaveCount(0);
  await page.getByRole("button", { name: "Undo" }).click();
  await expect(page.locator(".conversation-link").first()).toHaveText("Colours");
});

test("a reload, or a second tab, while an answer streams follows it live to its end", async ({ page }) => {
  test.setTimeout(90_000);
  await openHydrated(page);
  await send(page, "Write a long story about a dragon and a knight.", { maxTokens: 400 });
  await expect(page).toHaveURL(/\/c\/[0-9a-f-]+$/);
  const answer = lastAssistant(page);
  await expect.poll(async () => Number(await answer.getAttribute("data-length")), { timeout: 30_000 }).toBeGreaterThan(20);

  // A second tab attaches to the same answer.
  const second = await page.context().newPage();
  await openHydrated(second, page.url());
  const mirrored = lastAssistant(second);
  await expect(mirrored).toHaveAttribute("data-status", /streaming|complete/);

  // The first tab reloads mid-answer: the server kept writing, the page re-attaches.
  await page.reload();
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  const afterReload = Number(await lastAssistant(page).getAttribute("data-length"));
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await expect(mirrored).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const final = Number(await lastAssistant(page).getAttribute("data-length"));
  expect(final).toBeGreaterThanOrEqual(afterReload);
  // Both tabs show the whole answer, as stored.
  expect(Number(await mirrored.getAttribute("data-length"))).toBe(final);
  await page.reload();
  await expect(lastAssistant(page)).toHaveAttribute("data-length", String(final));
  await expect(lastAssistant(page).locator(".message-usage")).toContainText("tok/s");
  await second.close();
});

test("regenerate and edit keep earlier versions to switch between; settings and the context gauge", async ({ page }) => {
  test.setTimeout(90_000);
  await openHydrated(page);
  // Temperature 1: the regenerated answer may differ (it uses the same parameters).
  await send(page, "Name a fruit.", { maxTokens: 8, temperature: 1 });
  const answer = lastAssistant(page);
  await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const first = await answer.locator(".message-content").textContent();
  // The gauge shows how full the model's window is.
  await expect(page.locator(".context-gauge")).toContainText(/Context \d+ \/ 4096 tokens/);

  // Regenerate: a second version; the first one is one click away.
  await answer.locator(".regenerate").click();
  await expect(lastAssistant(page).locator(".version-label")).toHaveText("2 / 2", { timeout: 45_000 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await lastAssistant(page).locator(".version-prev").click();
  await expect(lastAssistant(page).locator(".version-label")).toHaveText("1 / 2");
  await expect(lastAssistant(page).locator(".message-content")).toHaveText(first!);

  // Edit the question: a new version of it with its own answer.
  const question = page.locator("article.message-user").first();
  await question.locator(".edit").click();
  await question.locator(".edit-text").fill("Name a vegetable.");
  await question.getByRole("button", { name: "Save & send" }).click();
  await expect(page.locator("article.message-user .message-content").first()).toHaveText("Name a vegetable.");
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await expect(page.locator("article.message-user .version-label")).toHaveText("2 / 2");
  await page.locator("article.message-user .version-prev").click();
  await expect(page.locator("article.message-user .message-content")).toHaveText("Name a fruit.");
  // The branch shown is remembered.
  await page.reload();
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("article.message-user .message-content")).toHaveText("Name a fruit.");
  await expect(page.locator("article.message-user .version-label")).toHaveText("1 / 2");

  // Conversation settings: validated next to the field, stored, and the composer follows.
  await page.locator(".conversation-settings summary").click();
  await page.locator("#system-prompt").fill("Answer in one word.");
  await page.locator("#conv-temperature").fill("3");
  await page.locator(".save-settings").click();
  await expect(page.locator('.conversation-settings [data-field-error="temperature"]')).toContainText("between 0 and 2");
  await page.locator("#conv-temperature").fill("0.5");
  await page.locator(".save-settings").click();
  await expect(page.locator(".conversation-settings .saved")).toBeVisible();
  await page.reload();
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  await page.locator(".conversation-settings summary").click();
  await expect(page.locator("#system-prompt")).toHaveValue("Answer in one word.");
  await expect(page.locator("#conv-temperature")).toHaveValue("0.5");
  await page.locator("details.params summary").click();
  await expect(page.locator("#temperature")).toHaveValue("0.5");
});

test("search finds messages across conversations; a conversation exports and imports back", async ({ page }) => {
  test.setTimeout(90_000);
  await openHydrated(page);
  await send(page, "Tell me about the zeppelin hangar.", { maxTokens: 8 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const conversation = page.url();

  await page.locator("#search").fill("zeppel");
  await page.locator("#search").press("Enter");
  await expect(page).toHaveURL(/\/search\?q=zeppel$/);
  const hit = page.locator(".search-hit").first();
  await expect(hit.locator("mark").first()).toHaveText(/zeppelin/i);
  await hit.locator("a").click();
  await expect(page).toHaveURL(conversation);
  await expect(page.locator("article.message-user .message-content").first()).toHaveText("Tell me about the zeppelin hangar.");

  // Export as JSON (every branch), then import it back as a new conversation.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator(".export-links a", { hasText: "JSON" }).click(),
  ]);
  const path = await download.path();
  const exported = JSON.parse(require("node:fs").readFileSync(path!, "utf8"));
  expect(exported.stoa_export).toBe(1);
  expect(exported.conversations[0].messages.length).toBe(2);
  const before = await page.locator(".conversation-link").count();
  await openHydrated(page, "/account");
  await page.setInputFiles("#import-file", {
    name: "export.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(exported)),
  });
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.locator(".import-result")).toHaveText("Imported 1 conversations.");
  await expect(page.locator(".conversation-link")).toHaveCount(before + 1);
  // A file that is not an export is refused with the reason.
  await page.setInputFiles("#import-file", { name: "x.json", mimeType: "application/json", buffer: Buffer.from("{\"a\":1}") });
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await expect(page.locator(".field-error")).toContainText("stoa_export");
});

test("a conversation set to answer as JSON with a schema shows its answers as formatted JSON", async ({ page }) => {
  test.setTimeout(90_000);
  await openHydrated(page);
  await send(page, "Hello.", { maxTokens: 4 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await page.locator(".conversation-settings summary").click();
  await page.locator("#response-schema").fill('{"type": "object", "properties": {"city": ');
  await page.locator(".save-settings").click();
  await expect(page.locator('.conversation-settings [data-field-error="response_schema"]')).toContainText("not JSON");
  await page
    .locator("#response-schema")
    .fill('{"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}}, "required": ["city", "country"]}');
  await page.locator(".save-settings").click();
  await expect(page.locator(".conversation-settings .saved")).toBeVisible();
  await send(page, "Name a big city and its country.", { maxTokens: 80 });
  await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const code = lastAssistant(page).locator("code.language-json");
  await expect(code).toBeVisible();
  const answer = JSON.parse(await code.innerText());
  expect(typeof answer.city).toBe("string");
  expect(typeof answer.country).toBe("string");
});
