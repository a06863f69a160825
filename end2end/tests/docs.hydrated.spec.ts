import { test, expect } from "@playwright/test";

test("interactive API docs at /docs, served by Stoa itself (no CDN)", async ({ page, baseURL }) => {
  const elsewhere: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(baseURL!) && !r.url().startsWith("data:")) elsewhere.push(r.url());
  });
  await page.goto("/docs");
  await expect(page).toHaveURL(/\/docs\/index\.html$/);
  await expect(page.locator(".swagger-ui .info .title")).toContainText("Stoa API");
  await expect(page.locator('.opblock-summary-path[data-path="/api/v1/generate"]')).toBeVisible();
  await expect(page.locator('.opblock-summary-path[data-path="/api/v1/conversations/{id}/messages"]').first()).toBeVisible();
  await page.screenshot({ path: "test-results/docs.png" });
  expect(elsewhere, "every asset comes from Stoa").toEqual([]);
});
