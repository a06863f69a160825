// Graceful shutdown of the real process: on SIGTERM Stoa stops accepting connections, lets
// running answers finish within server.shutdown_grace_secs, marks the rest interrupted with
// their partial text, and exits 0. Checked after a restart on the same data directory.
import { test, expect } from "@playwright/test";
import { connect } from "node:net";
import { startServer, Server } from "../server";

const PORT = 3250;

async function post(base: string, path: string, body: unknown): Promise<Response> {
  return fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Starts an answer as server-sent events; resolves once its first token arrived. */
async function startAnswer(server: Server, message: string, maxTokens: number) {
  const conv = await (await post(server.url, "/api/v1/conversations", { title: "shutdown" })).json();
  const res = await post(server.url, `/api/v1/conversations/${conv.id}/messages`, {
    message,
    stream: true,
    params: { temperature: 0, max_tokens: maxTokens },
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("event: token")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended before a token: " + text);
    text += decoder.decode(value);
  }
  // The rest of the stream, read to its end (as a connected browser would).
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return text;
      text += decoder.decode(value);
    }
  })();
  return { id: conv.id as string, first: text, rest };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", () => resolve(true));
  });
}

async function lastMessage(server: Server, id: string) {
  const conv = await (await fetch(`${server.url}/api/v1/conversations/${id}`)).json();
  return conv.messages[conv.messages.length - 1];
}

test("SIGTERM: new connections are refused, a running answer finishes within the grace period", async () => {
  let server = await startServer(PORT, undefined, { STOA_SERVER__SHUTDOWN_GRACE_SECS: "60" });
  const dataDir = server.dataDir;
  try {
    const answer = await startAnswer(server, "Name three colours.", 60);
    expect(answer.first).not.toContain("event: done"); // still answering when the signal comes
    const exited = server.stop(); // SIGTERM
    await expect.poll(() => refused(PORT), { timeout: 5_000 }).toBe(true);
    const stream = await answer.rest;
    expect(stream).toContain("event: done");
    expect(await exited).toBe(0);

    server = await startServer(PORT, dataDir);
    const stored = await lastMessage(server, answer.id);
    expect(stored.role).toBe("assistant");
    expect(stored.status).toBe("complete");
    expect(stored.content.length).toBeGreaterThan(0);
  } finally {
    await server.stop();
  }
});

test("SIGTERM: an answer still running when the grace period ends is kept, marked interrupted", async () => {
  let server = await startServer(PORT, undefined, { STOA_SERVER__SHUTDOWN_GRACE_SECS: "1" });
  const dataDir = server.dataDir;
  try {
    const answer = await startAnswer(server, "Write a very long story about a castle.", 3000);
    expect(await server.stop()).toBe(0);
    await answer.rest;

    server = await startServer(PORT, dataDir);
    const stored = await lastMessage(server, answer.id);
    expect(stored.status).toBe("interrupted");
    expect(stored.content.length).toBeGreaterThan(0);
  } finally {
    await server.stop();
  }
});
