/**
 * The controller with an injected clock: hour-long steps and SLO windows move without waiting.
 * Requests are fed to the route's log-phase measure as the proxy does.
 */
import { afterAll, expect, test } from "bun:test";
import { validateConfig } from "../../src/config/load.ts";
import { RolloutController } from "../../src/rollout/controller.ts";
import type { FinishedRequest } from "../../src/rollout/measure.ts";
import { rollouts } from "../../src/rollout/registry.ts";
import { StateFile } from "../../src/rollout/store.ts";
import { buildRuntime } from "../../src/runtime/build.ts";
import { sloKey } from "../../src/slo/tracker.ts";
import { tempDir } from "../helpers/tmp.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());
const HOUR = 3_600_000;

test("an hour-long step passes after an hour of (injected) time, the next fails on its figures; the SLO's burn and budget follow the same clock and are saved by the hour", async () => {
  const config = validateConfig("t", {
    listeners: [{ port: 0 }],
    state: { path: dir.file("state.db") },
    routes: [{ name: "orders", rollout: { stable: "v1", canary: "v2", steps: ["10%", "100%"], step_duration: "1h", min_requests: 20 }, slo: { availability: "99%", window: "7d" } }],
    clusters: { v1: { endpoints: ["127.0.0.1:1"] }, v2: { endpoints: ["127.0.0.1:2"] } },
  });
  let now = Date.UTC(2026, 11, 1, 10, 0, 0);
  const controller = new RolloutController({ now: () => now, timer: false });
  await controller.start(config);
  const runtime = buildRuntime(config, 1);
  await controller.configure(config);
  const route = runtime.routes[0]!;
  const handle = rollouts.get("orders")!;
  // Let the start be persisted (the registry's change is handled asynchronously).
  await Bun.sleep(50);
  const feed = (cluster: string, n: number, status = 200) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) route.measure!({ startedAt: t - 5, status, attempt: 1, cluster: { name: cluster } } satisfies FinishedRequest, t);
  };

  feed("v1", 180);
  feed("v2", 20);
  now += HOUR - 1;
  await controller.look();
  expect(handle.state).toMatchObject({ phase: "progressing", step: 0 });
  now += 1;
  await controller.look();
  expect(handle.state).toMatchObject({ phase: "progressing", step: 1, weight: 10_000, epoch: 1 });
  expect(controller.views()[0]!.figures.canary.requests).toBe(0); // a new epoch counts anew

  // Ten minutes on, 100 requests of which 10 failed: the 5-minute window holds only them (10% against
  // a 1% budget: 10×); the hour holds the 200 before too (10 of 300: 3.3×).
  feed("v2", 90);
  feed("v2", 10, 502);
  now += 10 * 60_000;
  await controller.look();
  // (The canary's 10% also failed its step: rolled back on this look.)
  expect(handle.state).toMatchObject({ phase: "rolled_back", weight: 0, reason: "canary error rate 10% > 1%" });
  const [slo] = controller.sloViews();
  expect(slo!.availability!.burn_rates["5m"]).toBeCloseTo(10, 5);
  expect(slo!.availability!.burn_rates["1h"]).toBeCloseTo(10 / 300 / 0.01, 5);
  // 300 requests so far, 10 failed, against 1% of them allowed.
  expect(slo!.availability!.budget_remaining).toBeCloseTo(1 - 10 / 300 / 0.01, 5);
  // Two hours later (fake time) nothing is in the 1h window any more; the budget still counts it.
  now += 2 * HOUR;
  await controller.look();
  expect(controller.sloViews()[0]!.availability!.burn_rates["1h"]).toBe(0);
  expect(controller.sloViews()[0]!.availability!.budget_remaining).toBeCloseTo(1 - 10 / 300 / 0.01, 5);

  await controller.stop();
  const file = await StateFile.open(config.state.path);
  const hours = await file.sloHours(sloKey("orders", config.routes[0]!.slo!), 0);
  expect(hours.reduce((sum, [, t]) => sum + t[0], 0)).toBe(300);
  expect(hours.reduce((sum, [, t]) => sum + t[1], 0)).toBe(10);
  const saved = (await file.rollouts()).get("orders")!;
  expect(saved).toMatchObject({ phase: "rolled_back", step: 1, epoch: 2, id: handle.state.id, updated_at: Date.UTC(2026, 11, 1, 11, 10, 0) });
  runtime.dispose();
});
