/**
 * Rollouts with `workers: 2` as users run them (the CLI, real processes): one decision for the
 * machine from both workers' counts, the same state in both workers, one log event per transition,
 * a reload that changes a rollout restarts it in both, and a restart of the whole process resumes
 * from the state file.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { ConfigInput } from "../../src/config/schema.ts";
import type { RolloutView } from "../../src/rollout/view.ts";
import { type ProxyProcess, spawnProxy, spawnWorkers } from "../helpers/cli.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

let stable: Upstream;
let canary: Upstream;
const canaryHits = new Map<string, number>();
let proxy: ProxyProcess & { cleanup(): void };
let adminPort = 0;
let port = 0;

const config = (countedStep = "60s"): ConfigInput & { workers: number } => ({
  workers: 2,
  admin: { address: "127.0.0.1", port: adminPort },
  listeners: [{ address: "127.0.0.1", port }],
  access_log: { enabled: false },
  routes: [
    // Never decides by itself: its counts are compared with what was sent.
    { name: "counted", match: { path: { prefix: "/counted" } }, rollout: { stable: "stable", canary: "canary", steps: ["30%"], step_duration: countedStep, min_requests: 1_000_000, sticky: false } },
    { name: "orders", rollout: { stable: "stable", canary: "canary", steps: ["20%", "50%", "100%"], step_duration: "1s", min_requests: 40, sticky: false }, slo: { availability: "99%" } },
  ],
  clusters: { stable: { endpoints: [stable.origin] }, canary: { endpoints: [canary.origin] } },
});

beforeAll(async () => {
  stable = startUpstream(() => new Response("stable"));
  canary = startUpstream((req) => {
    const path = new URL(req.url).pathname.split("/")[1] ?? "";
    canaryHits.set(path, (canaryHits.get(path) ?? 0) + 1);
    return new Response("canary");
  });
  adminPort = freePort();
  port = freePort();
  proxy = await spawnWorkers(config());
});
afterAll(async () => {
  await proxy.stop();
  stable.stop(true);
  canary.stop(true);
  proxy.cleanup();
});

const admin = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${adminPort}${path}`, init);
async function rollout(name: string): Promise<RolloutView> {
  const { rollouts } = (await (await admin("/rollouts")).json()) as { rollouts: RolloutView[] };
  return rollouts.find((r) => r.route === name)!;
}

/** `n` requests, each on a new connection (the kernel spreads connections over the workers), 20 at a time. */
async function send(path: string, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = Array.from({ length: Math.min(20, n - i) }, () => fetch(`http://127.0.0.1:${port}${path}`, { keepalive: false, headers: { connection: "close" } }).then((r) => r.text()));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** Both workers report the controller's run, epoch, state and weight. */
const agreed = (r: RolloutView) =>
  r.workers.length === 2 && r.workers.every((w) => w.rollout_id === r.rollout_id && w.epoch === r.epoch && w.state === r.state && w.weight === r.weight);

test("the decision counts both workers' requests, and both have the same weight in force", async () => {
  await send("/counted/x", 400);
  const r = await waitFor("every request counted", async () => {
    const v = await rollout("counted");
    return v.figures.canary.requests + v.figures.stable.requests === 400 && agreed(v) ? v : undefined;
  });
  expect(r.workers.map((w) => w.worker)).toEqual([0, 1]);
  // Both workers served some: the machine's figures are their sum.
  for (const w of r.workers) expect(w.requests.canary + w.requests.stable).toBeGreaterThan(0);
  expect(r.workers.reduce((sum, w) => sum + w.requests.canary, 0)).toBe(r.figures.canary.requests);
  expect(r.figures.canary.requests).toBe(canaryHits.get("counted") ?? 0);
  expect(r.weight).toBe(30);
  // Measured: a look's collection of the other worker's counts over IPC (through the supervisor).
  const { controller } = (await (await admin("/rollouts")).json()) as { controller: { deciding: boolean; worker: number; look_every_ms: number; last_look: { collect_ms: number; workers_answered: number } } };
  expect(controller).toMatchObject({ deciding: true, worker: 0, look_every_ms: 100, last_look: { workers_answered: 1 } });
  console.log(`rollout look: collecting the other worker's counts took ${controller.last_look.collect_ms} ms`);
  expect(controller.last_look.collect_ms).toBeLessThan(500);
});

test("steps advance to promotion with one decision for the machine; every transition is one log event; both workers follow within a second", async () => {
  const lags: number[] = [];
  let epoch = -1;
  for (let round = 0; round < 300; round++) {
    const r = await rollout("orders");
    if (r.epoch !== epoch && r.workers.length === 2) {
      epoch = r.epoch;
      const settled = await waitFor(`both workers at epoch ${epoch}`, async () => {
        const v = await rollout("orders");
        return agreed(v) || v.epoch !== epoch ? v : undefined;
      }, 1000);
      if (settled.epoch === epoch) {
        const at = settled.workers.map((w) => Date.parse(w.applied_at));
        if (epoch > 0) lags.push(Math.abs(at[1]! - at[0]!));
      }
    }
    if (r.state !== "progressing") break;
    await send("/orders", 40);
    await Bun.sleep(50);
  }
  const r = await waitFor("promoted in both workers", async () => {
    const v = await rollout("orders");
    return v.state === "promoted" && agreed(v) ? v : undefined;
  });
  expect(r.history.filter((h) => h.event !== "extended").map((h) => [h.event, h.weight])).toEqual([["started", 20], ["advanced", 50], ["advanced", 100], ["promoted", 100]]);
  // One event per transition, from the deciding worker only.
  const events = proxy.events.filter((e) => e.route === "orders" && typeof e.msg === "string" && (e.msg as string).startsWith("rollout "));
  expect(events.filter((e) => e.event !== "extended").map((e) => e.msg)).toEqual(["rollout started", "rollout advanced", "rollout advanced", "rollout promoted"]);
  expect(events.at(-1)).toMatchObject({ event: "promoted", state: "promoted", weight: 100, step: 3, steps: 3, stable: "stable", canary: "canary", reason: "all 3 steps passed" });
  // Measured: how far apart the two workers put each new state in force (IPC through the supervisor).
  console.log(`rollout state propagation between workers, per transition (ms): ${lags.join(", ")}`);
  for (const lag of lags) expect(lag).toBeLessThan(1000);
  const after = await send("/orders", 100);
  expect(new Set(after)).toEqual(new Set(["canary"]));
  // The merged metrics: the weight is a state (max over workers), transitions counted once.
  const metrics = await (await admin("/metrics")).text();
  expect(metrics).toMatch(/^switchyard_rollout_weight\{route="orders"\} 100$/m);
  expect(metrics).toMatch(/^switchyard_rollout_transitions_total\{route="orders",event="promoted"\} 1$/m);
  expect(metrics).toMatch(/^switchyard_slo_requests_total\{route="orders"\} \d+$/m);
}, 60_000);

test("abort puts both workers on stable at once: the canary gets nothing more", async () => {
  const res = await admin("/rollouts/counted/abort", { method: "POST" });
  expect(((await res.json()) as RolloutView).state).toBe("rolled_back");
  await waitFor("both workers rolled back", async () => agreed(await rollout("counted")), 1000);
  const before = canaryHits.get("counted");
  expect(new Set(await send("/counted/y", 200))).toEqual(new Set(["stable"]));
  expect(canaryHits.get("counted")).toBe(before);
  expect(proxy.events.filter((e) => e.msg === "rollout aborted")).toHaveLength(1);
});

test("a reload that changes a rollout starts it anew in both workers; one that keeps it keeps it", async () => {
  const before = { counted: await rollout("counted"), orders: await rollout("orders") };
  const after = proxy.events.length;
  writeFileSync(proxy.configFile, JSON.stringify(config("90s")));
  await waitFor("both workers reloaded", () => proxy.events.slice(after).filter((e) => e.msg === "config reloaded").length === 2, 10_000);
  const counted = await waitFor("the new run in both workers", async () => {
    const v = await rollout("counted");
    return v.rollout_id !== before.counted.rollout_id && agreed(v) ? v : undefined;
  });
  expect(counted).toMatchObject({ state: "progressing", step: 1, weight: 30, step_duration_ms: 90_000 });
  expect(proxy.events.slice(after).filter((e) => e.msg === "rollout restarted")).toEqual([expect.objectContaining({ route: "counted", reason: "the rollout's definition changed" })]);
  const orders = await rollout("orders");
  expect(orders).toMatchObject({ state: "promoted", rollout_id: before.orders.rollout_id, epoch: before.orders.epoch });
});

test("a restart of the process resumes every rollout from the state file", async () => {
  const before = { counted: await rollout("counted"), orders: await rollout("orders") };
  expect(await proxy.stop()).toBe(0);
  const again = await spawnProxy(proxy.configFile);
  try {
    await waitFor("2 workers", () => again.events.filter((e) => e.msg === "switchyard started").length === 2, 10_000);
    const orders = await waitFor("orders restored in both workers", async () => {
      const v = await rollout("orders");
      return v !== undefined && agreed(v) ? v : undefined;
    });
    expect(orders).toMatchObject({ state: "promoted", rollout_id: before.orders.rollout_id, epoch: before.orders.epoch, weight: 100 });
    expect(orders.history).toEqual(before.orders.history);
    expect(await rollout("counted")).toMatchObject({ state: "progressing", rollout_id: before.counted.rollout_id, step_started_at: before.counted.step_started_at });
    expect(again.events.filter((e) => e.msg === "rollout restored").map((e) => e.route).sort()).toEqual(["counted", "orders"]);
    expect(again.events.filter((e) => e.msg === "rollout started")).toEqual([]);
    // From the first requests on, both workers send orders to the promoted canary.
    expect(new Set(await send("/orders", 60))).toEqual(new Set(["canary"]));
  } finally {
    proxy = Object.assign(again, { cleanup: proxy.cleanup });
  }
});
