/**
 * The benchmark upstream: one Bun.serve on 127.0.0.1 that every target (direct, minimal proxy,
 * Switchyard, nginx) forwards to.
 *
 *   bun bench/upstream.ts [PORT]        (or UPSTREAM_PORT=…; 0 or absent = any free port)
 *
 * Prints `listening <port>` on stdout once it accepts connections.
 *
 *   GET  /1k          1 KiB body (Content-Length, so Switchyard buffers it: ≤ 64 KiB)
 *   GET  /64k         64 KiB body (exactly Switchyard's buffering limit)
 *   POST /upload      reads the whole body, answers {"bytes":N}
 *   GET  /sse         an SSE stream: `events` (default 20) events of ~100 bytes each, one chunk
 *                     per event, no delay unless `interval_ms` is given, then the stream ends.
 *                     No Content-Length (chunked), so every proxy streams it.
 *   GET  /ws          WebSocket echo (each message is sent back as is)
 *   GET  /download    `mib` (default 100) MiB of bytes, 64 KiB per chunk, made only when the
 *                     stream is pulled (so a reader that stops stops the upstream), with
 *                     Content-Length. bench/memory.ts's slow-reader scenario.
 *   GET  /__stats     {"requests":N,"connections":N,"streamedBytes":N}: requests served, distinct
 *                     client connections (peer address:port) and /download bytes handed to
 *                     Bun's server since the last POST /__reset.
 *                     This is how the runner counts new upstream connections per measurement.
 *   POST /__reset
 */
import type { ServerWebSocket } from "bun";

const port = Number(process.argv[2] ?? process.env.UPSTREAM_PORT ?? 0);

const ONE_K = new Uint8Array(1024).fill(0x61);
const SIXTY_FOUR_K = new Uint8Array(64 * 1024).fill(0x62);
const SSE_EVENT_DATA = "x".repeat(80);
const encoder = new TextEncoder();

let requests = 0;
let peers = new Set<string>();
let streamedBytes = 0;
const CHUNK = new Uint8Array(64 * 1024).fill(0x63);

function download(url: URL): Response {
  const total = Math.max(1, Math.min(4096, Number(url.searchParams.get("mib") ?? 100) || 100)) * 1024 * 1024;
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const n = Math.min(CHUNK.byteLength, total - sent);
      // A fresh copy each time: the stream may hold chunks it has not written yet.
      controller.enqueue(CHUNK.slice(0, n));
      sent += n;
      streamedBytes += n;
      if (sent >= total) controller.close();
    },
  }, { highWaterMark: 0 });
  return new Response(stream, { headers: { "content-type": "application/octet-stream", "content-length": String(total) } });
}

function sse(url: URL): Response {
  const events = Math.max(1, Math.min(100_000, Number(url.searchParams.get("events") ?? 20) || 20));
  const intervalMs = Math.max(0, Number(url.searchParams.get("interval_ms") ?? 0) || 0);
  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (intervalMs > 0 && sent > 0) await Bun.sleep(intervalMs);
      // ~100 bytes per event: "id: N\nevent: tick\ndata: <80 x>\n\n"
      controller.enqueue(encoder.encode(`id: ${sent}\nevent: tick\ndata: ${SSE_EVENT_DATA}\n\n`));
      sent++;
      if (sent >= events) controller.close();
    },
  });
  return new Response(stream, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" },
  });
}

async function upload(req: Request): Promise<Response> {
  let bytes = 0;
  if (req.body !== null) {
    for await (const chunk of req.body) bytes += chunk.byteLength;
  }
  return Response.json({ bytes });
}

const server = Bun.serve<undefined>({
  hostname: "127.0.0.1",
  port,
  development: false,
  idleTimeout: 60,
  maxRequestBodySize: 64 * 1024 * 1024,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/__stats") return Response.json({ requests, connections: peers.size, streamedBytes });
    if (url.pathname === "/__reset" && req.method === "POST") {
      requests = 0;
      peers = new Set();
      streamedBytes = 0;
      return new Response(null, { status: 204 });
    }
    requests++;
    const peer = srv.requestIP(req);
    if (peer !== null) peers.add(`${peer.address}:${peer.port}`);
    switch (url.pathname) {
      case "/1k":
        return new Response(ONE_K, { headers: { "content-type": "text/plain" } });
      case "/64k":
        return new Response(SIXTY_FOUR_K, { headers: { "content-type": "application/octet-stream" } });
      case "/upload":
        return req.method === "POST" ? upload(req) : new Response("use POST\n", { status: 405 });
      case "/sse":
        return sse(url);
      case "/download":
        return download(url);
      case "/ws":
        if (srv.upgrade(req, { data: undefined })) return undefined;
        return new Response("expected a WebSocket upgrade\n", { status: 426 });
      default:
        return new Response("not found\n", { status: 404 });
    }
  },
  websocket: {
    idleTimeout: 120,
    message(ws: ServerWebSocket<undefined>, message: string | Buffer) {
      ws.send(message);
    },
  },
});

console.log(`listening ${server.port}`);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    void server.stop(true);
    process.exit(0);
  });
}
