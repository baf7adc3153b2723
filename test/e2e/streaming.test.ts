/**
 * Streaming through the proxy process: events arrive as sent, and 100 MiB each way pass with
 * bounded memory (the proxy runs in its own process so its RSS is its own).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const MiB = 1024 * 1024;
const TOTAL = 100 * MiB;
const CHUNK = new Uint8Array(256 * 1024).fill(120);

let upstream: Upstream;
let proxy: ProxyProcess;
let cleanup: () => void;
let releaseSecond: () => void = () => {};
let secondSentAt = 0;

beforeAll(async () => {
  upstream = startUpstream(async (req, server) => {
    const path = new URL(req.url).pathname;
    if (path === "/ws" && server.upgrade(req, { data: undefined })) return undefined;
    if (path === "/sse") {
      const gate = new Promise<void>((resolve) => (releaseSecond = resolve));
      const encoder = new TextEncoder();
      return new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(encoder.encode("event: first\ndata: 1\n\n"));
            await gate;
            secondSentAt = performance.now();
            controller.enqueue(encoder.encode("event: second\ndata: 2\n\n"));
            controller.close();
          },
        }),
        { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
      );
    }
    if (path === "/download") {
      let sent = 0;
      return new Response(
        new ReadableStream({
          pull(controller) {
            if (sent >= TOTAL) return controller.close();
            controller.enqueue(CHUNK);
            sent += CHUNK.byteLength;
          },
        }),
      );
    }
    if (path === "/upload") {
      let received = 0;
      for await (const chunk of req.body!) received += chunk.byteLength;
      return Response.json({ received });
    }
    return new Response("not found", { status: 404 });
  }, {
    message(ws, message) {
      ws.send(message);
    },
  });
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: 0, max_request_body: "200MiB" }],
    routes: [{ match: { path: { prefix: "/" } }, to: "up", websocket: true, timeouts: { request: "120s", idle: "10s" } }],
    clusters: { up: { endpoints: [upstream.origin] } },
    access_log: { enabled: false },
  });
  cleanup = config.cleanup;
  proxy = await spawnProxy(config.file);
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
  cleanup();
});

test("SSE: the first event reaches the client before the upstream sends the second", async () => {
  const res = await fetch(`${proxy.origin}/sse`);
  expect(res.headers.get("content-type")).toBe("text/event-stream");
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!text.includes("\n\n")) text += decoder.decode((await reader.read()).value);
  const firstAt = performance.now();
  expect(text).toBe("event: first\ndata: 1\n\n");
  expect(secondSentAt).toBe(0); // the upstream has not sent it yet
  releaseSecond();
  let rest = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    rest += decoder.decode(value);
  }
  expect(rest).toBe("event: second\ndata: 2\n\n");
  expect(secondSentAt).toBeGreaterThan(firstAt);
});

/** Samples the proxy's RSS while `work` runs; returns the peak growth over the value before. */
async function peakGrowth(work: () => Promise<void>): Promise<number> {
  Bun.gc(true);
  const before = proxy.rss();
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, proxy.rss())), 25);
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, proxy.rss());
  return peak - before;
}

test("a 100 MiB download streams through with RSS growth under 64 MiB", async () => {
  let received = 0;
  const growth = await peakGrowth(async () => {
    const res = await fetch(`${proxy.origin}/download`);
    for await (const chunk of res.body!) received += chunk.byteLength;
  });
  expect(received).toBe(TOTAL);
  console.log(`download: proxy RSS grew ${(growth / MiB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(64 * MiB);
}, 60_000);

test("a 100 MiB upload streams through with RSS growth under 64 MiB", async () => {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= TOTAL) return controller.close();
      controller.enqueue(CHUNK);
      sent += CHUNK.byteLength;
    },
  });
  let result: { received: number } | undefined;
  const growth = await peakGrowth(async () => {
    const res = await fetch(`${proxy.origin}/upload`, { method: "POST", body, duplex: "half" } as RequestInit);
    result = (await res.json()) as { received: number };
  });
  expect(result!.received).toBe(TOTAL);
  console.log(`upload: proxy RSS grew ${(growth / MiB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(64 * MiB);
}, 60_000);

test("a slow reader of a 100 MiB download does not make the proxy buffer it", async () => {
  let received = 0;
  const growth = await peakGrowth(async () => {
    const res = await fetch(`${proxy.origin}/download`);
    const reader = res.body!.getReader();
    const deadline = performance.now() + 1500;
    // Read slowly for a while, then drain the rest.
    while (performance.now() < deadline) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
      await Bun.sleep(20); // the delay is the scenario: a slow reader
    }
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.byteLength;
    }
  });
  expect(received).toBe(TOTAL);
  console.log(`slow reader: proxy RSS grew ${(growth / MiB).toFixed(1)} MiB`);
  expect(growth).toBeLessThan(64 * MiB);
}, 60_000);

test("a long WebSocket session (80 MiB echoed) does not accumulate memory in the proxy", async () => {
  const message = new Uint8Array(4096).fill(1);
  const total = 20_000;
  let echoed = 0;
  const growth = await peakGrowth(async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws`);
    ws.binaryType = "arraybuffer";
    await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
    await new Promise<void>((resolve) => {
      // Keep a window of messages in flight; each echo lets one more go.
      ws.onmessage = () => {
        echoed++;
        if (echoed === total) resolve();
        else if (echoed + 64 <= total) ws.send(message);
      };
      for (let i = 0; i < 64; i++) ws.send(message);
    });
    ws.close();
  });
  expect(echoed).toBe(total);
  console.log(`websocket: proxy RSS grew ${(growth / MiB).toFixed(1)} MiB over ${((total * message.byteLength) / MiB).toFixed(0)} MiB echoed`);
  expect(growth).toBeLessThan(40 * MiB);
}, 60_000);
