// Starts a real Stoa server process for the scripts outside the test suite (benchmarks in
// bench/, end2end/screenshots.mjs): its own data directory and port, quiet logs; resolves
// once the server answers. (The Playwright suite has its own, typed: end2end/server.ts.)
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function startStoa({ bin, siteRoot, port, env = {} }) {
  const child = spawn(bin, [], {
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: "stoa",
      LEPTOS_SITE_ROOT: siteRoot,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_RELOAD_PORT: String(port + 1000),
      STOA_SERVER__DATA_DIR: mkdtempSync(join(tmpdir(), "stoa-run-")),
      STOA_LOG__FILTER: "warn",
      ...env,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(base + "/")).ok) return { base, child };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`stoa did not answer on ${base}`);
}
