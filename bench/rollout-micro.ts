/**
 * Micro-bench of rollouts' and SLOs' cost per request (`bun bench/rollout-micro.ts`, ~2 s):
 * - log phase: the route's measure (SLO counters and the rollout's per-side counts and latency
 *   bucket), and the heap it leaves behind (none expected: integer increments into preallocated arrays);
 * - select phase: a rollout's side choice (cookie mode, a client without the cookie yet) against a
 *   plain `to` route's choice.
 * Routes without rollout or slo pay one undefined check in the log phase; not measured here.
 */
import { validateConfig } from "../src/config/load.ts";
import type { FinishedRequest } from "../src/rollout/measure.ts";
import { buildRuntime } from "../src/runtime/build.ts";
import { tempDir } from "../test/helpers/tmp.ts";

const dir = tempDir("switchyard-bench-");
const config = validateConfig("bench", {
  listeners: [{ port: 0 }],
  state: { path: dir.file("state.db") },
  routes: [
    { name: "rollout", rollout: { stable: "a", canary: "b" }, slo: { availability: "99.9%", latency: { threshold: "300ms", target: "99%" } } },
    { name: "plain", to: "a" },
  ],
  clusters: { a: { endpoints: ["127.0.0.1:1"] }, b: { endpoints: ["127.0.0.1:2"] } },
});
const runtime = buildRuntime(config, 1);
const measure = runtime.routes[0]!.measure!;
const requests: FinishedRequest[] = Array.from({ length: 1024 }, (_, i) => ({ startedAt: 0, status: i % 50 === 0 ? 503 : 200, attempt: 1, cluster: { name: i % 10 === 0 ? "b" : "a" } }));
const N = 5_000_000;
for (let round = 0; round < 3; round++) {
  const t = performance.now();
  for (let i = 0; i < N; i++) measure(requests[i & 1023]!, (i % 700) + 1);
  console.log(`measure: ${(((performance.now() - t) * 1e6) / N).toFixed(1)} ns per request`);
}
Bun.gc(true);
const heap = process.memoryUsage().heapUsed;
for (let i = 0; i < N; i++) measure(requests[i & 1023]!, (i % 700) + 1);
console.log(`heap after ${N} more requests: ${((process.memoryUsage().heapUsed - heap) / 1024).toFixed(0)} KiB more`);

const headers = new Headers({ cookie: "session=1" });
const sink: { stickyCookie?: string } = {};
for (const [name, choose] of [["rollout side (cookie mode, new client)", runtime.routes[0]!.chooseCluster!], ["plain route", runtime.routes[1]!.chooseCluster!]] as const) {
  const t = performance.now();
  for (let i = 0; i < 1_000_000; i++) choose(headers, Math.random, sink);
  console.log(`${name} choice: ${(((performance.now() - t) * 1e6) / 1_000_000).toFixed(0)} ns`);
}
runtime.dispose();
dir.cleanup();
