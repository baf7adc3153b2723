/**
 * A small WebSocket load generator (wrk and oha cannot drive WebSockets). Used for every target of
 * the websocket-echo scenario, so the figures are comparable with each other (not with wrk's).
 *
 *   bun bench/ws-load.ts --url ws://127.0.0.1:PORT/ws [--connections 32] [--duration 5]
 *                        [--size 128] [--connect-timeout 10]
 *
 * Opens N connections; once all are open, each one runs a ping-pong loop: send a binary message of
 * `size` bytes, wait for its echo, record the round trip, send the next, until the duration ends.
 * Prints one JSON line on stdout, with oha's names: requestsPerSec (here: echoed messages per
 * second), p50 and p99 (seconds), plus counts. Exits 1 if any connection failed or a message came
 * back wrong.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    connections: { type: "string", default: "32" },
    duration: { type: "string", default: "5" },
    size: { type: "string", default: "128" },
    "connect-timeout": { type: "string", default: "10" },
  },
});

const url = values.url;
if (url === undefined || !/^wss?:\/\//.test(url)) {
  console.error("usage: bun bench/ws-load.ts --url ws://HOST:PORT/PATH [--connections N] [--duration S] [--size BYTES]");
  process.exit(2);
}
const connections = Math.max(1, Number(values.connections));
const durationMs = Math.max(0.1, Number(values.duration)) * 1000;
const size = Math.max(1, Number(values.size));
const connectTimeoutMs = Number(values["connect-timeout"]) * 1000;

const payload = new Uint8Array(size);
for (let i = 0; i < size; i++) payload[i] = i & 0xff;

/** Round trips in ms; grown as needed. */
let latencies = new Float64Array(1 << 16);
let count = 0;
function record(ms: number): void {
  if (count === latencies.length) {
    const next = new Float64Array(latencies.length * 2);
    next.set(latencies);
    latencies = next;
  }
  latencies[count++] = ms;
}

let connectErrors = 0;
let badMessages = 0;
let closedEarly = 0;
let running = false;
let deadline = 0;

function sizeOf(data: unknown): number {
  if (typeof data === "string") return Buffer.byteLength(data);
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return -1;
}

function open(): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url!);
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(() => {
      connectErrors++;
      ws.close();
      resolve(undefined);
    }, connectTimeoutMs);
    ws.addEventListener("open", () => {
      clearTimeout(timer);
      resolve(ws);
    }, { once: true });
    ws.addEventListener("error", () => {
      clearTimeout(timer);
      connectErrors++;
      resolve(undefined);
    }, { once: true });
  });
}

/** One connection's ping-pong loop; resolves when the duration is over (or the socket closed). */
function loop(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    let sentAt = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve();
    };
    ws.onmessage = (e: MessageEvent) => {
      const now = performance.now();
      if (sizeOf(e.data) !== size) badMessages++;
      else record(now - sentAt);
      if (now >= deadline) {
        finish();
        return;
      }
      sentAt = performance.now();
      ws.send(payload);
    };
    ws.onclose = () => {
      if (running && !done) closedEarly++;
      finish();
    };
    sentAt = performance.now();
    ws.send(payload);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const sockets = (await Promise.all(Array.from({ length: connections }, open))).filter((ws): ws is WebSocket => ws !== undefined);
const started = performance.now();
deadline = started + durationMs;
running = true;
// A loop whose echo never comes back must not hang the run.
const guard = new Promise<void>((resolve) => setTimeout(resolve, durationMs + 5_000));
await Promise.race([Promise.all(sockets.map(loop)), guard]);
running = false;
const elapsedS = (performance.now() - started) / 1000;
for (const ws of sockets) ws.close(1000);

const sorted = latencies.slice(0, count).sort();
const result = {
  tool: "ws-load",
  url,
  connections,
  connected: sockets.length,
  messageBytes: size,
  durationS: elapsedS,
  messages: count,
  requestsPerSec: count / elapsedS,
  p50: percentile(sorted, 50) / 1000,
  p99: percentile(sorted, 99) / 1000,
  connectErrors,
  badMessages,
  closedEarly,
};
console.log(JSON.stringify(result));
process.exit(connectErrors + badMessages + closedEarly > 0 || count === 0 ? 1 : 0);
