import { test, expect } from "@playwright/test";
import { callServerFn } from "../server";

test("the page renders its history with JavaScript disabled", async ({ page, baseURL }) => {
  // Make a conversation through the same server functions the UI uses.
  const created = await callServerFn(baseURL!, "conversations/create", {});
  expect(created.status).toBe(200);
  const { id } = await created.json();
  const reply = await callServerFn(baseURL!, "chat/send", {
    req: { conversation_id: id, message: "Name three colours.", params: { temperature: 0, max_tokens: 32 } },
  });
  expect(reply.status).toBe(200);
  const events = (await reply.text()).trim().split("\n").map((l) => JSON.parse(l));
  expect(events[0].type).toBe("started");
  const done = events[events.length - 1];
  expect(done.type).toBe("done");
  expect(done.message.status).toBe("complete");

  await page.goto(`/c/${id}`);
  await expect(page.locator("article.message-user .message-content")).toHaveText("Name three colours.");
  // The answer, rendered from its Markdown on the server.
  await expect(page.locator("article.message-assistant")).toHaveAttribute("data-length", String([...done.message.content].length));
  const firstWord = done.message.content.split(/\s+/).find((w: string) => /^[A-Za-z]{3,}$/.test(w));
  if (firstWord) await expect(page.locator("article.message-assistant .message-content")).toContainText(firstWord);
  await expect(page.locator(".message-usage")).toContainText("tok/s");
  await expect(page.locator(".conversation-link", { hasText: "Name three colours." })).toBeVisible();
  // No hydration happened: the marker set by the browser-side effect stays false.
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "false");
});

test("bad input to the server function is a 400 naming the field, not a 500", async ({ baseURL }) => {
  const created = await callServerFn(baseURL!, "conversations/create", {});
  const { id } = await created.json();
  const res = await callServerFn(baseURL!, "chat/send", {
    req: { conversation_id: id, message: "hi", params: { temperature: 9, max_tokens: 10 } },
  });
  expect(res.status).toBe(400);
  const body = await res.json();
  expect(body.field).toBe("temperature");
  expect(body.message).toContain("between 0 and 2");

  const missing = await callServerFn(baseURL!, "conversations/get", { id: "no-such-id" });
  expect(missing.status).toBe(404);
  const conv = await callServerFn(baseURL!, "conversations/get", { id });
  expect((await conv.json()).messages).toEqual([]); // the rejected message was not stored
});

test("without JavaScript a message is sent with the plain form and the answer appears when done", async ({ page }) => {
  await page.goto("/");
  await page.locator("#message").fill("What is the capital of France?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page).toHaveURL(/\/c\/[0-9a-f-]+$/, { timeout: 60_000 });
  await expect(page.locator("article.message-user .message-content")).toHaveText("What is the capital of France?");
  await expect(page.locator("article.message-assistant")).toHaveAttribute("data-status", "complete");
  await expect(page.locator("article.message-assistant .message-content")).not.toBeEmpty();
  const url = page.url();

  // A follow-up in the same conversation, then an empty message: refused next to the field.
  await page.locator("#message").fill("And of Italy?");
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.locator("article.message-user")).toHaveCount(2, { timeout: 60_000 });
  expect(page.url()).toBe(url);
  await page.getByRole("button", { name: "Send" }).click();
  await expect(page.locator('[data-field-error="message"]')).toContainText("must not be empty");
  await expect(page.locator("article.message-user")).toHaveCount(2);
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "false");
});

test("without JavaScript the search form finds messages", async ({ page, baseURL }) => {
  const created = await callServerFn(baseURL!, "conversations/create", {});
  const { id } = await created.json();
  const reply = await callServerFn(baseURL!, "chat/send", {
    req: { conversation_id: id, message: "Where do flamingos sleep?", params: { temperature: 0, max_tokens: 8 } },
  });
  await reply.text();
  await page.goto("/");
  await page.locator("#search").fill("flamingos");
  await page.locator("#search").press("Enter");
  await expect(page).toHaveURL(/\/search\?q=flamingos$/);
  await expect(page.locator(".search-hit mark").first()).toHaveText(/flamingos/i);
  await expect(page.locator(`.search-hit a[href="/c/${id}"]`).first()).toBeVisible();
});
