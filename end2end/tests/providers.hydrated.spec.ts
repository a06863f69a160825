import { test, expect } from "@playwright/test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, Server } from "../server";
import { lastAssistant, openHydrated, send } from "./helpers";

// Two real Stoa processes: B's provider "upstream" is A's OpenAI-compatible /v1, with B's
// own embedded model as the fallback.
test("pick a model served by another Stoa; when it dies mid-answer the answer fails, then the local model takes over", async ({ page }) => {
  test.setTimeout(120_000);
  const a = await startServer(3200);
  const config = join(mkdtempSync(join(tmpdir(), "stoa-e2e-config-")), "stoa.toml");
  writeFileSync(
    config,
    [
      "[[providers]]",
      'name = "upstream"',
      `base_url = "${a.url}/v1"`,
      "retries = 1",
      'fallback = "local"',
      "",
      "[routing]",
      "retry_backoff_ms = 50",
    ].join("\n"),
  );
  let b: Server | undefined;
  try {
    b = await startServer(3300, undefined, { STOA_CONFIG: config });
    await openHydrated(page, b.url + "/");

    const picker = page.locator("#model");
    const remote = picker.locator("optgroup[label=upstream] option");
    await expect(remote).toHaveCount(1);
    const remoteId = await remote.getAttribute("value");
    expect(remoteId).toMatch(/^upstream\/local\/SmolLM2/);
    await expect(picker.locator("optgroup[label=local] option")).toContainText("(local)");
    await picker.selectOption(remoteId!);

    await send(page, "What is the capital of France?", { maxTokens: 40 });
    const answer = lastAssistant(page);
    await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    await expect(answer).toHaveAttribute("data-model", remoteId!);
    await expect(answer.locator(".message-usage")).toContainText("upstream · local/SmolLM2");
    await expect(answer.locator(".message-notice")).toHaveCount(0);
    await page.screenshot({ path: "test-results/provider-picked.png" });

    // A dies in the middle of an answer: B ends it as failed, keeps the partial text and
    // does not retry it elsewhere (tokens were already shown).
    await send(page, "Write a very long story about a lighthouse keeper and the sea.", { maxTokens: 600 });
    const cut = lastAssistant(page);
    await expect
      .poll(async () => ((await cut.locator(".message-content").textContent()) ?? "").length)
      .toBeGreaterThan(40);
    await a.kill();
    await expect(cut).toHaveAttribute("data-status", "failed", { timeout: 30_000 });
    await expect(cut.locator(".message-status")).toContainText("failed");
    expect(((await cut.locator(".message-content").textContent()) ?? "").length).toBeGreaterThan(40);
    await expect(cut).toHaveAttribute("data-model", remoteId!);

    // The conversation keeps its model; the next answer falls back, and says so.
    await send(page, "And the capital of Italy?", { maxTokens: 40 });
    const second = lastAssistant(page);
    await expect(second).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    await expect(second).toHaveAttribute("data-model", /^local\/SmolLM2/);
    await expect(second.locator(".message-notice")).toContainText(`${remoteId} failed 2 times`);
    await expect(second.locator(".message-notice")).toContainText("answered by local/");
    await page.screenshot({ path: "test-results/provider-fallback.png" });

    // Reloaded, the picker still shows the conversation's model and the notice stays.
    await page.reload();
    await expect(page.locator("#model")).toHaveValue(remoteId!);
    await expect(lastAssistant(page).locator(".message-notice")).toContainText("answered by local/");
  } finally {
    await b?.stop();
    await a.kill();
  }
});
