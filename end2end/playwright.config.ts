import { defineConfig, devices } from "@playwright/test";

// The server is started by global-setup.ts from the binary make build built (E2E_STOA_BIN),
// on its own port with a fresh data directory; tests that restart a server start their own.
export const PORT = Number(process.env.E2E_PORT ?? 3100);
const chromium = {
  ...devices["Desktop Chrome"],
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  },
};

export default defineConfig({
  testDir: "./tests",
  globalSetup: "./global-setup.ts",
  timeout: 60_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [["list"]],
  use: { baseURL: `http://127.0.0.1:${PORT}`, trace: "off" },
  projects: [
    { name: "hydrated", testMatch: /.*\.hydrated\.spec\.ts/, use: chromium },
    { name: "no-javascript", testMatch: /.*\.nojs\.spec\.ts/, use: { ...chromium, javaScriptEnabled: false } },
  ],
});
