/**
 * Local rate limits with `workers: 2` through the CLI: the kernel spreads new connections over both
 * workers, yet a client gets its limit once, not once per worker (the supervisor holds the buckets).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { getFrom } from "../helpers/from-address.ts";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: ProxyProcess;
let cleanup: () => void;
let adminPort = 0;
let workerPids: number[] = [];

beforeAll(async () => {
  up = startUpstream(() => new Response("ok"));
  adminPort = freePort();
  const config = writeTempConfig({
    workers: 2,
    admin: { address: "127.0.0.1", port: adminPort },
    listeners: [{ address: "127.0.0.1", port: freePort() }],
    rate_limits: { machine: { key: "client_ip", rate: "10/min" } },
    routes: [{ to: "u", filters: [{ type: "rate_limit", limits: ["machine"] }] }],
    clusters: { u: { endpoints: [up.origin] } },
    access_log: { enabled: false },
  });
  cleanup = config.cleanup;
  proxy = await spawnProxy(config.file);
  await waitFor("both workers", () => proxy.events.filter((e) => e.msg === "switchyard started").length === 2, 10_000);
  workerPids = proxy.events.filter((e) => e.msg === "switchyard started").map((e) => e.pid as number);
});
afterAll(async () => {
  await proxy.stop();
  for (const pid of workerPids) {
    try {
      process.kill(pid, "SIGKILL"); // orphans of the last test, if any are left
    } catch {}
  }
  up.stop(true);
  cleanup();
});

const statusesFrom = async (address: string, n: number, concurrent: boolean) => {
  if (concurrent) return Promise.all(Array.from({ length: n }, () => getFrom(address, `${proxy.origin}/x`).then((r) => r.status)));
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await getFrom(address, `${proxy.origin}/x`)).status); // a new connection each: spread over the workers
  return out;
};

test("10/min per client holds across two workers: 40 requests on 40 connections → 10 allowed, in sequence and at once", async () => {
  const sequential = await statusesFrom("127.0.0.2", 40, false);
  expect(sequential.filter((s) => s === 200)).toHaveLength(10);
  expect(sequential.slice(0, 10).every((s) => s === 200)).toBe(true);
  const concurrent = await statusesFrom("127.0.0.3", 40, true);
  expect(concurrent.filter((s) => s === 200)).toHaveLength(10);
});

test("/metrics sums the workers' decisions and shows the supervisor's buckets", async () => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const value = (series: string) => Number(text.split("\n").find((l) => l.startsWith(series))?.split(" ").pop());
  expect(value('switchyard_rate_limit_decisions_total{limit="machine",scope="local",decision="allowed"}')).toBe(20);
  expect(value('switchyard_rate_limit_decisions_total{limit="machine",scope="local",decision="limited"}')).toBe(60);
  expect(value('switchyard_rate_limit_buckets{limit="machine"}')).toBe(2);
  const check = Bun.spawn(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text), stdout: "pipe", stderr: "pipe" });
  expect(await check.exited).toBe(0);
});

test("a worker restarted by the supervisor keeps the machine's buckets", async () => {
  const after = proxy.events.length;
  process.kill(workerPids[0]!, "SIGKILL");
  await waitFor("restarted", () => proxy.events.slice(after).some((e) => e.msg === "switchyard started"), 10_000);
  workerPids = [...workerPids, ...proxy.events.slice(after).filter((e) => e.msg === "switchyard started").map((e) => e.pid as number)];
  const statuses = await statusesFrom("127.0.0.2", 10, false);
  expect(statuses.every((s) => s === 429)).toBe(true); // 127.0.0.2 used its 10 in the first test
}, 20_000);

test("without the supervisor (killed), each worker decides alone with half the limit: still 10 in total, never 20", async () => {
  proxy.proc.kill("SIGKILL");
  await proxy.proc.exited;
  // The workers live on, orphaned, on the same port; their channel closed with the supervisor, so
  // each decides alone (a take sent before a worker heard of it falls back after 100 ms anyway).
  const started = performance.now();
  const statuses = await statusesFrom("127.0.0.4", 40, false);
  expect(performance.now() - started).toBeLessThan(3000); // no wait for a supervisor that is gone
  const allowed = statuses.filter((s) => s === 200).length;
  expect(allowed).toBeGreaterThanOrEqual(5); // at least one worker's share
  expect(allowed).toBeLessThanOrEqual(10);
}, 30_000);
