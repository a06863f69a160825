import { test, expect } from "@playwright/test";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { PORT } from "../playwright.config";

// The official `openai` Python client (from PyPI) against Stoa's /v1, served by the
// global test server.
test("the official OpenAI Python client works against /v1", async () => {
  // Structured output and a tool-call round trip add several answers of the local model.
  test.setTimeout(150_000);
  const python = process.env.E2E_PYTHON;
  expect(python, "E2E_PYTHON names the Python that has `openai` (make test-e2e sets it)").toBeTruthy();
  const script = join(__dirname, "..", "clients", "openai_client.py");
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
    execFile(python!, [script, `http://127.0.0.1:${PORT}/v1`], { timeout: 140_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout + stderr }),
    );
  });
  console.log(output);
  expect(code, output).toBe(0);
  expect(output).toContain("ok");
});
