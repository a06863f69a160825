// Starts and stops real Stoa server processes for the tests.
import { spawn, ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Server {
  url: string;
  dataDir: string;
  stop(): Promise<number | null>;
  /** SIGKILL: the process dies at once, mid-answer if it was answering. */
  kill(): Promise<number | null>;
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the tests through 'make test-e2e')`);
  return v;
}

export async function startServer(
  port: number,
  dataDir?: string,
  env: Record<string, string> = {},
): Promise<Server> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "stoa-e2e-"));
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(required("E2E_STOA_BIN"), [], {
    env: {
      ...process.env,
      LEPTOS_OUTPUT_NAME: "stoa",
      LEPTOS_SITE_ROOT: required("E2E_SITE_ROOT"),
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_RELOAD_PORT: String(port + 1000),
      STOA_SERVER__DATA_DIR: dir,
      STOA_SERVER__SHUTDOWN_GRACE_SECS: "2",
      STOA_LOG__FILTER: process.env.STOA_LOG__FILTER ?? "warn",
      ...env,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stoa exited early with ${child.exitCode}`);
    try {
      const res = await fetch(url + "/");
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`stoa did not answer on ${url} within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    dataDir: dir,
    async stop() {
      child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      child.kill("SIGKILL");
      return exited;
    },
  };
}

/** Calls a server function with a JSON body; returns the raw response. */
export async function callServerFn(base: string, endpoint: string, body: unknown): Promise<Response> {
  return fetch(`${base}/api/${endpoint}`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  });
}
