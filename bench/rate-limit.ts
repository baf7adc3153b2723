/**
 * What a rate-limit check costs per request (`bun bench/rate-limit.ts`, ~10 s):
 *   local   — Limiter.check on in-process buckets (key extraction, GCRA, metrics), ns/op
 *   workers — a take through the supervisor over IPC, as each worker does with `workers: N`, µs
 *   global  — Limiter.check against a local redis-server (EVALSHA of the GCRA script), µs
 * Every loop is bounded in count; the redis-server is the bench's own (free port, temp dir) and is
 * stopped at the end.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Limiter } from "../src/filters/rate-limit/limiter.ts";
import { LocalBuckets } from "../src/filters/rate-limit/local-buckets.ts";
import { RedisConnection } from "../src/filters/rate-limit/redis-buckets.ts";
import { RateLimitSchema } from "../src/filters/rate-limit/schema.ts";
import { type RateLimitMessage, SupervisorBuckets, superviseRateLimits, WORKER_COUNT_ENV } from "../src/filters/rate-limit/shared-buckets.ts";
import { shapeOf } from "../src/filters/rate-limit/gcra.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { freePort } from "./lib/procs.ts";

const KEYS = 1000;
const ctxs = Array.from({ length: KEYS }, (_, i) => ({ clientIp: `198.51.100.${i % 250}:${i}`, headers: new Headers(), route: { name: "r" } }) as unknown as ProxyContext);

function percentiles(samplesMs: number[]): { p50: number; p99: number } {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { p50: sorted[Math.floor(sorted.length * 0.5)]! * 1000, p99: sorted[Math.floor(sorted.length * 0.99)]! * 1000 };
}

async function timed(n: number, step: (i: number) => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await step(i);
    out.push(performance.now() - started);
  }
  return out;
}

/** As a worker (spawned below): takes through the supervisor, timed one by one. */
async function workerSide(): Promise<void> {
  const buckets = new SupervisorBuckets("bench\u0000x", 100_000, 2, "bench", () => {});
  const shape = shapeOf(1_000_000, 1, 1_000_000);
  await timed(2000, (i) => buckets.take(`k${i % KEYS}`, shape)); // warm-up
  const samples = await timed(20_000, (i) => buckets.take(`k${i % KEYS}`, shape));
  const started = performance.now();
  await Promise.all(Array.from({ length: 20_000 }, (_, i) => buckets.take(`c${i % KEYS}`, shape)));
  const concurrentMs = performance.now() - started;
  process.send!({ type: "bench-result", ...percentiles(samples), perTakeConcurrentUs: (concurrentMs * 1000) / 20_000 });
}

async function main(): Promise<void> {
  const rows: [string, string][] = [];

  // local: the whole per-request check, on 1000 keys that stay within their limit.
  const config = RateLimitSchema.parse({ key: "client_ip", rate: "1000000/s" });
  const limiter = new Limiter("bench", config, new LocalBuckets("bench", 100_000), undefined);
  const N = 2_000_000;
  for (let i = 0; i < 200_000; i++) limiter.check(ctxs[i % KEYS]!);
  let started = performance.now();
  for (let i = 0; i < N; i++) limiter.check(ctxs[i % KEYS]!);
  rows.push(["local check (Limiter.check, 1000 keys)", `${(((performance.now() - started) * 1e6) / N).toFixed(0)} ns/op`]);
  const raw = new LocalBuckets("raw", 100_000);
  const shape = shapeOf(1_000_000, 1, 1_000_000);
  const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
  started = performance.now();
  for (let i = 0; i < N; i++) raw.take(keys[i % KEYS]!, shape);
  rows.push(["local bucket take alone (LocalBuckets.take)", `${(((performance.now() - started) * 1e6) / N).toFixed(0)} ns/op`]);

  // workers: a child process takes through this process (the supervisor's side).
  const onTake = superviseRateLimits(() => {});
  const result = await new Promise<{ p50: number; p99: number; perTakeConcurrentUs: number }>((resolve, reject) => {
    const child = Bun.spawn([process.execPath, import.meta.path, "--worker"], {
      env: { ...process.env, [WORKER_COUNT_ENV]: "2" },
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "json", // as server/workers.ts
      ipc(message, from) {
        const m = message as RateLimitMessage | { type: "bench-result"; p50: number; p99: number; perTakeConcurrentUs: number };
        if (m.type === "bench-result") {
          resolve(m);
          child.kill();
        } else onTake(m, (reply) => from.send(reply));
      },
    });
    void child.exited.then((code) => reject(new Error(`worker exited ${code}`)));
  });
  rows.push(["workers: take via supervisor IPC, sequential", `p50 ${result.p50.toFixed(1)} µs, p99 ${result.p99.toFixed(1)} µs`]);
  rows.push(["workers: 20,000 concurrent takes (batched per tick)", `${result.perTakeConcurrentUs.toFixed(2)} µs per take`]);

  // global: against the bench's own redis-server.
  const dir = mkdtempSync(join(tmpdir(), "switchyard-bench-redis-"));
  const port = freePort();
  const redis = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdout: "ignore", stderr: "inherit" });
  try {
    const url = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => (s.end(), true), () => false);
      if (ok) break;
      await Bun.sleep(20);
    }
    const globalConfig = RateLimitSchema.parse({ key: "client_ip", rate: "1000000/s", scope: "global", redis: { url, timeout: "1s" } });
    const connection = new RedisConnection(url, 1000);
    const global = new Limiter("bench", globalConfig, new LocalBuckets("fallback", 100_000), connection);
    await timed(1000, (i) => global.check(ctxs[i % KEYS]!));
    const samples = await timed(10_000, (i) => global.check(ctxs[i % KEYS]!));
    const p = percentiles(samples);
    rows.push(["global check (Limiter.check → Redis EVALSHA), sequential", `p50 ${p.p50.toFixed(1)} µs, p99 ${p.p99.toFixed(1)} µs`]);
    started = performance.now();
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => global.check(ctxs[i % KEYS]!)));
    rows.push(["global: 10,000 concurrent checks (pipelined)", `${(((performance.now() - started) * 1000) / 10_000).toFixed(2)} µs per check`]);
    connection.dispose();
  } finally {
    redis.kill();
    await redis.exited;
    rmSync(dir, { recursive: true, force: true });
  }

  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
}

if (process.argv.includes("--worker")) await workerSide();
else await main();
