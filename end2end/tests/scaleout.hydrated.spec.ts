// Several replicas: two Stoa processes on one PostgreSQL (pgvector), behind a real nginx
// from Debian that spreads requests over both. Any replica serves any request (sessions and
// conversations live in the database), an answer written by one is followed and stopped
// from the other, and a document whose replica is killed mid-ingestion is finished by the
// other one when its lease runs out. Nothing is lost.
import { test, expect } from "@playwright/test";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startServer, Server } from "../server";
import { lastAssistant, send, signUp } from "./helpers";

const A = 3900;
const B = 3902;
const PROXY = 3904;
const PG = 3906;
const postgresScript = resolve(process.cwd(), "..", ".ci", "postgres.sh");

/** nginx in the foreground with its own prefix; round robin over both replicas. */
async function startNginx(dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 32m;
  upstream stoa {
    server 127.0.0.1:${A} max_fails=1 fail_timeout=10s;
    server 127.0.0.1:${B} max_fails=1 fail_timeout=10s;
  }
  server {
    listen 127.0.0.1:${PROXY};
    location / {
      proxy_pass http://stoa;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # Answers stream token by token: nothing is held back.
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_next_upstream error timeout;
    }
  }
}
`,
  );
  const child: ChildProcess = spawn("nginx", ["-p", dir, "-e", join(dir, "error.log"), "-c", conf], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<void>((done) => child.on("exit", () => done()));
  const url = `http://127.0.0.1:${PROXY}`;
  await expect.poll(() => fetch(url + "/healthz").then((r) => r.status, () => 0), { timeout: 10_000 }).toBe(200);
  return {
    url,
    async stop() {
      child.kill("SIGQUIT");
      await exited;
    },
  };
}

/** Reads a streaming response until `until` holds for the text so far; the rest goes on in the background. */
async function readUntil(res: Response, until: (text: string) => boolean) {
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!until(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended early: " + text.slice(0, 2000));
    text += decoder.decode(value, { stream: true });
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  })();
  return { first: text, rest };
}

/** A long made-up report, distinct sentence by sentence, for a document that takes a while to embed. */
function longReport(paragraphs: number): string {
  const things = ["harbour", "granary", "observatory", "aqueduct", "library", "market", "forge", "orchard"];
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const sentences: string[] = [];
    for (let s = 0; s < 8; s++) {
      const thing = things[(p * 8 + s) % things.length];
      sentences.push(
        `In year ${1200 + p} the ${thing} of district ${s + 1} recorded ${(p * 37 + s * 11) % 997} visitors and ${(p * 13 + s * 7) % 89} repairs.`,
      );
    }
    out.push(sentences.join(" "));
  }
  return out.join("\n\n");
}

test("two replicas behind nginx on one PostgreSQL: any replica serves any request, a killed replica's work is finished", async ({ browser }) => {
  test.setTimeout(300_000);
  const pgDir = join(tmpdir(), `stoa-e2e-pg-${process.pid}`);
  const database = execFileSync(postgresScript, ["start", pgDir, String(PG)]).toString().trim();
  const env = {
    STOA_DATABASE__URL: database,
    STOA_AUTH__MODE: "accounts",
    // Per-address limits count the clients nginx forwards, not nginx.
    STOA_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]',
  };
  const proxyDir = mkdtempSync(join(tmpdir(), "stoa-e2e-nginx-"));
  let a: Server | undefined;
  let b: Server | undefined;
  let proxy: { url: string; stop(): Promise<void> } | undefined;
  try {
    a = await startServer(A, undefined, env);
    b = await startServer(B, undefined, env);
    proxy = await startNginx(proxyDir);

    // Through the proxy: sign-up, pages and the streamed answer land on either replica.
    const page = await (await browser.newContext()).newPage();
    await signUp(page, proxy.url, "ada");
    await send(page, "What is the capital of France?", { maxTokens: 24 });
    await expect(lastAssistant(page)).toHaveAttribute("data-status", "complete", { timeout: 60_000 });
    await expect(page).toHaveURL(/\/c\//);
    const conversation = page.url().split("/c/")[1];
    const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
    const csrf = (await page.locator('meta[name="csrf-token"]').getAttribute("content"))!;
    const headers = { cookie, "x-csrf-token": csrf, "content-type": "application/json" };

    // Each replica, asked directly with the same session, returns the same stored conversation.
    const read = async (base: string) => {
      const res = await fetch(`${base}/api/v1/conversations/${conversation}`, { headers: { cookie } });
      expect(res.status).toBe(200);
      return (await res.json()).messages;
    };
    const fromA = await read(a.url);
    expect(fromA).toHaveLength(2);
    expect(fromA[1].status).toBe("complete");
    expect(await read(b.url)).toEqual(fromA);

    // An answer A writes is followed from B, token by token, and stopped from B.
    const writing = await readUntil(
      await fetch(`${a.url}/api/v1/conversations/${conversation}/messages`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          message: "Write a very long story about a castle.",
          stream: true,
          params: { temperature: 0, max_tokens: 1500 },
        }),
      }),
      (text) => text.includes("event: token"),
    );
    const started = writing.first.split("\n").find((l) => l.startsWith("data:") && l.includes('"started"'))!;
    const answerId: string = JSON.parse(started.slice(5)).assistant_message.id;
    const followed = await readUntil(
      await fetch(`${b.url}/api/chat/watch`, { method: "POST", headers, body: JSON.stringify({ message_id: answerId }) }),
      (text) => (text.match(/"type":"token"/g) ?? []).length >= 3,
    );
    expect(followed.first).toContain('"type":"resumed"');
    const stop = await fetch(`${b.url}/api/chat/stop`, { method: "POST", headers, body: JSON.stringify({ message_id: answerId }) });
    expect(await stop.json()).toBe(true);
    const [wrote, saw] = await Promise.all([writing.rest, followed.rest]);
    const doneLine = saw.trim().split("\n").pop()!;
    const done = JSON.parse(doneLine);
    expect(done.type).toBe("done");
    expect(done.message.status).toBe("stopped");
    expect(wrote).toContain("event: done");
    expect(wrote).toContain('"status":"stopped"');
    const stored = (await read(b.url))[3];
    expect(stored.status).toBe("stopped");
    expect(stored.content).toBe(done.message.content);

    // A document A is embedding when it is killed (kill -9) is finished by B.
    await b.stop(); // only A takes the document
    const form = new FormData();
    form.append("file", new Blob([longReport(60)], { type: "text/plain" }), "district-report.txt");
    const uploaded = await fetch(`${a.url}/api/v1/documents`, { method: "POST", headers: { cookie, "x-csrf-token": csrf }, body: form });
    expect(uploaded.status).toBe(200);
    const documentId: string = (await uploaded.json())[0].document.id;
    const documentAt = async (base: string) =>
      (await fetch(`${base}/api/v1/documents/${documentId}`, { headers: { cookie } })).json();
    await expect
      .poll(async () => {
        const d = await documentAt(a!.url);
        return d.status === "embedding" && d.progress_done > 0;
      }, { timeout: 60_000, intervals: [100] })
      .toBe(true);
    const before = await documentAt(a.url);
    expect(before.progress_done).toBeLessThan(before.progress_total);
    await a.kill();
    b = await startServer(B, b.dataDir, env);
    // Through the proxy (A is down): B takes the document over once A's lease runs out.
    await expect
      .poll(async () => (await documentAt(proxy!.url)).status, { timeout: 120_000, intervals: [1000] })
      .toBe("ready");
    const finished = await documentAt(proxy.url);
    expect(finished.error).toBeNull();
    // Every chunk, none twice: as many as the same text read whole by a live replica (a
    // trailing newline makes it another file; A's total was projected while it was still
    // splitting the text, so it is not the reference).
    const again = new FormData();
    again.append("file", new Blob([longReport(60) + "\n"], { type: "text/plain" }), "district-report-copy.txt");
    const copy = await fetch(`${proxy.url}/api/v1/documents`, { method: "POST", headers: { cookie, "x-csrf-token": csrf }, body: again });
    expect(copy.status).toBe(200);
    const copyId: string = (await copy.json())[0].document.id;
    const copyAt = async () => (await fetch(`${proxy!.url}/api/v1/documents/${copyId}`, { headers: { cookie } })).json();
    await expect.poll(async () => (await copyAt()).status, { timeout: 120_000, intervals: [500] }).toBe("ready");
    expect(finished.chunk_count).toBe((await copyAt()).chunk_count);
    expect(finished.chunk_count).toBeGreaterThan(before.progress_done);

    // Nothing lost: the conversation is whole.
    expect(await read(proxy.url)).toHaveLength(4);
  } finally {
    await proxy?.stop();
    await b?.stop();
    await a?.kill();
    execFileSync(postgresScript, ["stop", pgDir]);
  }
});
