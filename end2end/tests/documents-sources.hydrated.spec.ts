import { test, expect } from "@playwright/test";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "../server";
import { lastAssistant, openHydrated, send } from "./helpers";

const fixtures = join(__dirname, "..", "..", "src", "server", "tests", "fixtures");

// A web page by address, a long upload cancelled, a PDF passage cited with its page.
test("add a page from its address, cancel a long upload, open a page-numbered citation", async ({ page }) => {
  test.setTimeout(150_000);
  // The page server: on loopback, which the Stoa under test is allowed to fetch from.
  const pages = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(
      "<html><head><title>Opening hours</title></head><body><h1>Library opening hours</h1>" +
        "<p>The reading room of the town library opens at half past eight on Saturdays.</p></body></html>",
    );
  });
  await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve));
  const pageUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}/opening-hours.html`;
  const server = await startServer(3410, undefined, { STOA_RAG__FETCH_ALLOW_NETWORKS: '["127.0.0.0/8"]' });
  try {
    await openHydrated(page, server.url + "/documents");

    // Add from URL: fetched by the server, read as HTML, its address kept.
    await page.locator("#url").fill(pageUrl);
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await expect(page.locator('.outcome[data-file="opening-hours.html"]')).toContainText("accepted");
    const row = page.locator('tr.document[data-file="opening-hours.html"]');
    await expect(row).toHaveAttribute("data-status", "ready", { timeout: 60_000 });

    // A long file and a PDF; the long one is cancelled while it is being read.
    const long = Array.from({ length: 40_000 }, (_, i) => `Line ${i}: the gauge on boiler ${i % 7} reads normal.`).join("\n\n");
    await page.setInputFiles("#file", [
      { name: "boiler-log.txt", mimeType: "text/plain", buffer: Buffer.from(long) },
      { name: "ferry.pdf", mimeType: "application/pdf", buffer: readFileSync(join(fixtures, "ferry.pdf")) },
    ]);
    await page.getByRole("button", { name: "Upload" }).click();
    const longRow = page.locator('tr.document[data-file="boiler-log.txt"]');
    await expect(longRow.locator(".doc-status")).toContainText(/extracting|embedding|queued/);
    await longRow.getByRole("button", { name: "Cancel boiler-log" }).click();
    await expect(longRow).toHaveAttribute("data-status", "failed");
    await expect(longRow.locator(".doc-status")).toHaveText("cancelled");
    await expect(longRow.getByRole("button", { name: "Cancel boiler-log" })).toHaveCount(0);
    // The worker stops and goes on with the next file.
    await expect(page.locator('tr.document[data-file="ferry.pdf"]')).toHaveAttribute("data-status", "ready", {
      timeout: 60_000,
    });
    await page.screenshot({ path: "test-results/documents-sources.png" });

    // The page fetched by address answers, cited by its heading.
    await page.locator(".new-chat").click();
    await send(page, "When does the reading room open on Saturdays?", { maxTokens: 30 });
    const answer = lastAssistant(page);
    await expect(answer).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    await expect(answer.locator(".citation summary").first()).toContainText("opening-hours › Library opening hours");

    // A PDF passage is cited with its page, and the chip opens it.
    await page.locator(".new-chat").click();
    await send(page, "Do bicycles cost extra on the ferry?", { maxTokens: 30 });
    await expect(page.locator("article.message-assistant")).toHaveCount(1);
    const pdf = lastAssistant(page);
    await expect(pdf).toHaveAttribute("data-status", "complete", { timeout: 45_000 });
    const chip = pdf.locator(".citation").first();
    await expect(chip.locator("summary")).toContainText("ferry › p. 3");
    await chip.locator("summary").click();
    await expect(chip.locator(".passage-text")).toContainText("free of charge on the lower deck");
  } finally {
    await server.stop();
    pages.close();
  }
});
