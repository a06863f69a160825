import { test, expect } from "@playwright/test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "../server";
import { lastAssistant, openHydrated, send } from "./helpers";

const fixtures = join(__dirname, "..", "..", "src", "server", "tests", "fixtures");

test("upload documents, watch them become ready, and get an answer that cites them", async ({ page }) => {
  test.setTimeout(120_000);
  // Its own server: the documents must not ground the answers of other tests.
  const server = await startServer(3400);
  try {
    await run(page, server.url);
  } finally {
    await server.stop();
  }
});

async function run(page: import("@playwright/test").Page, base: string) {
  await openHydrated(page, base + "/documents");
  const file = (name: string, mimeType: string) => ({ name, mimeType, buffer: readFileSync(join(fixtures, name)) });
  await page.setInputFiles("#file", [
    file("handbook.md", "text/markdown"),
    file("lighthouse.pdf", "application/pdf"),
    file("leave-policy.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    { name: "minutes.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ") },
  ]);
  await page.getByRole("button", { name: "Upload" }).click();

  // Each file has its own outcome: the unsupported one is refused, the others go in.
  await expect(page.locator('.outcome[data-file="minutes.exe"]')).toHaveClass(/error/);
  await expect(page.locator('.outcome[data-file="minutes.exe"]')).toContainText(".exe are not supported");
  await expect(page.locator('.outcome[data-file="handbook.md"]')).toContainText("accepted");
  for (const file of ["handbook.md", "lighthouse.pdf", "leave-policy.docx"]) {
    const row = page.locator(`tr.document[data-file="${file}"]`);
    await expect(row).toHaveAttribute("data-status", "ready", { timeout: 60_000 });
    await expect(row.locator(".doc-status")).toContainText(/ready · \d+ passages?/);
  }
  await page.screenshot({ path: "test-results/documents.png" });

  // A question the handbook answers: the answer comes with its source.
  await page.locator(".new-chat").click();
  await send(page, "How many days of paid holiday do employees get?", { maxTokens: 40 });
  const answer = lastAssistant(page);
  await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  const chip = answer.locator(".citation").first();
  await expect(chip.locator("summary")).toContainText("[1] handbook › Employee Handbook > Holidays");
  await expect(chip.locator(".passage")).toBeHidden();
  await chip.locator("summary").click();
  await expect(chip.locator(".passage-text")).toContainText("27 days of paid holiday");
  await expect(chip.locator(".passage-source")).toContainText("handbook · passage");
  await page.screenshot({ path: "test-results/citation.png" });

  // How the answer was made: the search, the choice of passages, the model's timing.
  const how = answer.locator(".answer-trace");
  await how.locator("summary").click();
  for (const step of ["search", "select", "first_token", "generate"]) {
    await expect(how.locator(`tr[data-step="${step}"]`)).toBeVisible();
  }

  // A follow-up is searched together with the question before it, and says so.
  await send(page, "Can the unused ones be carried over?", { maxTokens: 30 });
  // Until its answer begins, the last answer on the page is the first one.
  await expect(page.locator("article.message-assistant")).toHaveCount(2);
  const follow = lastAssistant(page);
  await expect(follow).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await follow.locator(".answer-trace summary").click();
  await expect(follow.locator(".trace-query")).toContainText("carried over");
  await expect(follow.locator('tr[data-step="rewrite"]')).toBeVisible();

  // A Word document is cited with its heading.
  await page.locator(".new-chat").click();
  await send(page, "How many weeks of parental leave do parents get?", { maxTokens: 30 });
  await expect(page.locator("article.message-assistant")).toHaveCount(1);
  const leave = lastAssistant(page);
  await expect(leave).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await expect(leave.locator(".citation summary").first()).toContainText("leave-policy › Parental leave");

  // The PDF is searchable too (a new question, in a new conversation).
  await page.locator(".new-chat").click();
  await send(page, "Where are the replacement bulbs for the lamp kept?", { maxTokens: 40 });
  const second = lastAssistant(page);
  await expect(second).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
  await second.locator(".citation summary").first().click();
  await expect(second.locator(".citation .passage-text").first()).toContainText("east cellar");
}
