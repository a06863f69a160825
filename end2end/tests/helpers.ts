import { expect, Page } from "@playwright/test";

export async function openHydrated(page: Page, path = "/") {
  await page.goto(path);
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
}

/** Types a message on the current page with the given parameters and sends it with Enter. */
export async function send(page: Page, text: string, opts: { temperature?: number; maxTokens?: number } = {}) {
  const details = page.locator("details.params");
  if ((await details.getAttribute("open")) === null) await details.locator("summary").click();
  await page.locator("#temperature").fill(String(opts.temperature ?? 0));
  await page.locator("#max_tokens").fill(String(opts.maxTokens ?? 64));
  await page.locator("#message").fill(text);
  await page.locator("#message").press("Enter");
}

export const PASSWORD = "correct horse battery";

/** Creates the account `name` from the sign-up page of `base` (in accounts mode). */
export async function signUp(page: Page, base: string, name: string) {
  await page.goto(base + "/");
  // Signed out: every page leads to sign-in.
  await expect(page).toHaveURL(base + "/signin");
  await page.getByRole("link", { name: "Create one" }).click();
  // The sign-up page's code arrives first (a chunk of the bundle); until then the sign-in
  // form, with fields of the same names, is still shown.
  await expect(page.getByRole("heading", { name: "Create an account" })).toBeVisible();
  await page.locator("#name").fill(name);
  await page.locator("#password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(base + "/");
  await expect(page.locator(".app")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator(".signed-in-as")).toContainText(name);
}

export const lastAssistant = (page: Page) => page.locator("article.message-assistant").last();

/** Records every distinct length the last assistant message's text goes through. */
export async function watchAnswerLengths(page: Page) {
  await page.evaluate(() => {
    const w = window as unknown as { __lengths: number[] };
    w.__lengths = [];
    // The answer's own length (data-length): the rendered Markdown can shrink while a
    // construct completes (`**bo` → bold), the text itself only grows.
    const record = () => {
      const all = document.querySelectorAll("article.message-assistant");
      const last = all[all.length - 1];
      const n = Number(last?.getAttribute("data-length") ?? 0);
      if (n > 0 && w.__lengths[w.__lengths.length - 1] !== n) w.__lengths.push(n);
    };
    new MutationObserver(record).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
      attributeFilter: ["data-length"],
    });
  });
}

export async function answerLengths(page: Page): Promise<number[]> {
  return page.evaluate(() => (window as unknown as { __lengths: number[] }).__lengths);
}
