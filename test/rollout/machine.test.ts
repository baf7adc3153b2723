/** The rollout state machine and its figures, with time given (no waiting), and the config's rules. */
import { describe, expect, test } from "bun:test";
import { validateConfig } from "../../src/config/load.ts";
import { countRequest, quantileMs, SIDE_SIZE, sideFigures, type SideFigures } from "../../src/rollout/figures.ts";
import { act, evaluate, freshState, type RolloutState } from "../../src/rollout/machine.ts";
import { type Rollout, RolloutSchema } from "../../src/rollout/schema.ts";

const T0 = Date.UTC(2026, 11, 1);
const SECOND = 1000;

const rollout = (extra: Record<string, unknown> = {}): Rollout =>
  RolloutSchema.parse({ stable: "v1", canary: "v2", steps: ["10%", "50%", "100%"], step_duration: "60s", min_requests: 100, ...extra });

const side = (requests: number, errors: number, p99_ms = 10, slow_rate = 0): SideFigures => ({ requests, errors, error_rate: requests ? errors / requests : 0, slow_rate, p99_ms });
const healthy = { canary: side(200, 0), stable: side(2000, 2) };

describe("figures", () => {
  test("p99 from fixed buckets is interpolated as histogram_quantile does, within a bucket's width", () => {
    const counts = new Float64Array(SIDE_SIZE);
    for (let i = 0; i < 990; i++) countRequest(counts, 0, false, 8, 0);
    for (let i = 0; i < 10; i++) countRequest(counts, 0, true, 210, 0);
    const f = sideFigures(counts, 0);
    expect(f).toMatchObject({ requests: 1000, errors: 10, error_rate: 0.01 });
    expect(f.p99_ms).toBeGreaterThanOrEqual(5);
    expect(f.p99_ms).toBeLessThanOrEqual(10);
    // 2% at 210 ms: the 99th percentile falls in (200, 250].
    for (let i = 0; i < 10; i++) countRequest(counts, 0, false, 210, 0);
    expect(quantileMs(counts, 0, 0.99)).toBeGreaterThan(200);
    expect(quantileMs(counts, 0, 0.99)).toBeLessThanOrEqual(250);
    expect(quantileMs(new Float64Array(SIDE_SIZE), 0, 0.99)).toBe(0);
  });

  test("slow counts only with a threshold", () => {
    const counts = new Float64Array(SIDE_SIZE);
    countRequest(counts, 0, false, 400, 300);
    countRequest(counts, 0, false, 200, 300);
    countRequest(counts, 0, false, 400, 0);
    expect(sideFigures(counts, 0).slow_rate).toBeCloseTo(1 / 3);
  });
});

describe("evaluate", () => {
  const def = rollout();
  const start = freshState(def, "a".repeat(64), 0, T0);

  test("a fresh rollout is at its first step, with a run id from the definition", () => {
    expect(start).toMatchObject({ phase: "progressing", step: 0, weight: 1000, epoch: 0, id: "aaaaaaaaaa.0" });
    expect(start.history.map((h) => h.event)).toEqual(["started"]);
  });

  test("nothing happens before the step's time, while checks pass", () => {
    expect(evaluate(def, start, healthy, T0 + 59 * SECOND)).toBeUndefined();
  });

  test("a passed step moves to the next weight at its end, a new epoch; the last one promotes", () => {
    const t1 = evaluate(def, start, healthy, T0 + 60 * SECOND)!;
    expect(t1.event).toBe("advanced");
    expect(t1.state).toMatchObject({ phase: "progressing", step: 1, weight: 5000, epoch: 1, step_started_at: T0 + 60 * SECOND, reason: "step 1 passed" });
    const t2 = evaluate(def, t1.state, healthy, T0 + 120 * SECOND)!;
    expect(t2.state).toMatchObject({ step: 2, weight: 10_000, epoch: 2 });
    const t3 = evaluate(def, t2.state, healthy, T0 + 180 * SECOND)!;
    expect(t3.event).toBe("promoted");
    expect(t3.state).toMatchObject({ phase: "promoted", weight: 10_000, reason: "all 3 steps passed" });
    expect(t3.state.history.map((h) => h.event)).toEqual(["started", "advanced", "advanced", "promoted"]);
    expect(evaluate(def, t3.state, healthy, T0 + 500 * SECOND)).toBeUndefined();
  });

  test("too few canary requests extend the step (logged once per step_duration), never pass it", () => {
    const few = { canary: side(99, 0), stable: side(2000, 0) };
    const e1 = evaluate(def, start, few, T0 + 60 * SECOND)!;
    expect(e1.event).toBe("extended");
    expect(e1.state).toMatchObject({ phase: "progressing", step: 0, epoch: 0, extensions: 1, reason: "99 canary requests < min_requests 100" });
    expect(evaluate(def, e1.state, few, T0 + 119 * SECOND)).toBeUndefined();
    expect(evaluate(def, e1.state, few, T0 + 120 * SECOND)!.state.extensions).toBe(2);
    // Enough requests later: the step passes then.
    expect(evaluate(def, e1.state, healthy, T0 + 90 * SECOND)!.event).toBe("advanced");
  });

  test("a failed check rolls back at once, with the reason and the figures; not before min_requests", () => {
    const bad = { canary: side(100, 5), stable: side(1000, 1) };
    const t = evaluate(def, start, bad, T0 + 5 * SECOND)!;
    expect(t.event).toBe("rolled_back");
    expect(t.state).toMatchObject({ phase: "rolled_back", weight: 0, reason: "canary error rate 5% > 1%" });
    expect(t.state.failed).toEqual([{ check: "error_rate", value: 0.05, limit: 0.01, passed: false }]);
    expect(t.state.history.at(-1)!.figures).toEqual(bad);
    expect(evaluate(def, start, { canary: side(99, 50), stable: side(1000, 0) }, T0 + 5 * SECOND)).toBeUndefined();
  });

  test("relative checks: against the stable side of the same window, or the last baseline when it has too few", () => {
    const rel = rollout({ analysis: { p99: { max_over_stable: "100ms", max_ratio: 3 }, error_rate: { max_over_stable: "0.5%" } } });
    const s0 = freshState(rel, "b".repeat(64), 0, T0);
    const slow = evaluate(rel, s0, { canary: side(200, 0, 215), stable: side(1000, 0, 9) }, T0 + SECOND)!;
    expect(slow.state.reason).toBe("canary p99 206 ms above stable's > 100 ms; canary p99 23.89× stable's > 3×");
    expect(evaluate(rel, s0, { canary: side(200, 1, 60), stable: side(1000, 2, 30) }, T0 + SECOND)).toBeUndefined();
    // 0.9% against 0.2%: 0.7 points above.
    expect(evaluate(rel, s0, { canary: side(1000, 9, 30), stable: side(1000, 2, 30) }, T0 + SECOND)!.state.reason).toBe("canary error rate 0.7% above stable's > 0.5%");
    // No stable requests (a 100% step) and no baseline: relative checks wait; with a baseline, they use it.
    const lone = { canary: side(200, 0, 400), stable: side(0, 0, 0) };
    expect(evaluate(rel, s0, lone, T0 + SECOND)).toBeUndefined();
    const withBaseline: RolloutState = { ...s0, baseline: side(1000, 0, 20) };
    expect(evaluate(rel, withBaseline, lone, T0 + SECOND)!.event).toBe("rolled_back");
  });

  test("the SLO as analysis: the canary's burn rate against max_burn_rate", () => {
    const def2 = rollout({ analysis: { slo: { max_burn_rate: 2 } } });
    const s0 = freshState(def2, "c".repeat(64), 0, T0);
    const slo = { availability: 0.99, latency: { target: 0.95 } };
    // 3% errors against a 1% budget: 3×.
    expect(evaluate(def2, s0, { canary: side(100, 3), stable: side(100, 0) }, T0 + SECOND, slo)!.state.reason).toBe("canary burns the availability budget 3× > 2×");
    expect(evaluate(def2, s0, { canary: side(100, 1, 10, 0.2), stable: side(100, 0) }, T0 + SECOND, slo)!.state.reason).toBe("canary burns the latency budget 4× > 2×");
    expect(evaluate(def2, s0, { canary: side(100, 1, 10, 0.05), stable: side(100, 0) }, T0 + SECOND, slo)).toBeUndefined();
  });
});

describe("operator actions", () => {
  const def = rollout();
  const start = freshState(def, "d".repeat(64), 0, T0);

  test("pause stops the clock and every decision; resume goes on where it was", () => {
    const paused = act(def, start, "pause", T0 + 10 * SECOND, null);
    if (typeof paused === "string") throw new Error(paused);
    expect(paused.state.phase).toBe("paused");
    expect(evaluate(def, paused.state, { canary: side(1000, 500), stable: side(10, 0) }, T0 + 100 * SECOND)).toBeUndefined();
    const resumed = act(def, paused.state, "resume", T0 + 70 * SECOND, null);
    if (typeof resumed === "string") throw new Error(resumed);
    // 10 s ran before the pause: 50 s are left from the resume.
    expect(resumed.state.step_started_at).toBe(T0 + 60 * SECOND);
    expect(evaluate(def, resumed.state, healthy, T0 + 119 * SECOND)).toBeUndefined();
    expect(evaluate(def, resumed.state, healthy, T0 + 120 * SECOND)!.event).toBe("advanced");
  });

  test("promote and abort end the rollout; what does not apply is refused with the reason", () => {
    const promoted = act(def, start, "promote", T0, null);
    expect(typeof promoted !== "string" && promoted.state).toMatchObject({ phase: "promoted", weight: 10_000, reason: "promoted by an operator" });
    const aborted = act(def, start, "abort", T0, null);
    expect(typeof aborted !== "string" && aborted.state).toMatchObject({ phase: "rolled_back", weight: 0, reason: "aborted by an operator" });
    expect(act(def, start, "resume", T0, null)).toBe("cannot resume a rollout that is progressing");
    if (typeof aborted === "string") throw new Error(aborted);
    expect(act(def, aborted.state, "promote", T0, null)).toBe("cannot promote a rollout that is rolled_back");
    const restarted = act(def, aborted.state, "restart", T0 + SECOND, null);
    if (typeof restarted === "string") throw new Error(restarted);
    expect(restarted.state).toMatchObject({ phase: "progressing", step: 0, weight: 1000, generation: 1, id: "dddddddddd.1", epoch: aborted.state.epoch + 1 });
  });
});

describe("config", () => {
  const problems = (route: Record<string, unknown>) => {
    try {
      validateConfig("t", { listeners: [{ port: 0 }], routes: [route], clusters: { v1: { endpoints: ["127.0.0.1:1"] }, v2: { endpoints: ["127.0.0.1:2"] }, v3: { endpoints: ["127.0.0.1:3"] } } });
      return [];
    } catch (e) {
      return (e as { problems: string[] }).problems;
    }
  };

  test("defaults", () => {
    expect(rollout({ steps: undefined, step_duration: undefined, min_requests: undefined })).toMatchObject({
      steps: [0.01, 0.05, 0.25, 0.5, 1], step_duration: 300_000, min_requests: 100, analysis: { error_rate: { max: 0.01 } }, sticky: { cookie_max_age: 604_800_000 },
    });
  });

  test("the README's complete example is a valid config", async () => {
    const readme = await Bun.file(`${import.meta.dir}/../../README.md`).text();
    const block = /### A complete example[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const config = validateConfig("README.md", Bun.YAML.parse(block), { ADMIN_TOKEN: "an-admin-token-of-16+" });
    expect(config.routes[0]!.rollout).toMatchObject({ stable: "orders-v1", canary: "orders-v2", steps: [0.01, 0.05, 0.25, 0.5, 1], step_duration: 600_000, sticky: { header: "x-user-id" } });
    expect(config.routes[0]!.slo).toEqual({ availability: 0.999, latency: { threshold: 300, target: 0.99 }, window: 30 * 86_400_000 });
    expect(config.state.path).toBe("/var/lib/switchyard/state.db");
  });

  test("every problem with its path", () => {
    expect(problems({ rollout: { stable: "v1", canary: "v4" } })).toEqual(['routes[0].rollout.canary: unknown cluster "v4" (known: v1, v2, v3)']);
    expect(problems({ to: "v1", rollout: { stable: "v1", canary: "v2" } })).toEqual(["routes[0].to: give exactly one of to, weighted_clusters, rollout, compose or module"]);
    expect(problems({ rollout: { stable: "v1", canary: "v1", steps: ["50%", "10%", "0%"] } })).toEqual([
      "routes[0].rollout.steps[2]: a step sends some traffic to the canary: above 0%",
      "routes[0].rollout.canary: must be another cluster than stable",
      "routes[0].rollout.steps[1]: steps must increase",
      "routes[0].rollout.steps[2]: steps must increase",
    ]);
    expect(problems({ rollout: { stable: "v1", canary: "v2" }, override: { header: "x-canary", cluster: "v3" } })).toEqual([
      'routes[0].override.cluster: on a rollout route the override forces a side: "v1" or "v2"',
    ]);
    expect(problems({ rollout: { stable: "v1", canary: "v2", analysis: {} } })).toEqual(["routes[0].rollout.analysis: give at least one check (error_rate, p99 or slo)"]);
    expect(problems({ rollout: { stable: "v1", canary: "v2", analysis: { slo: { max_burn_rate: 2 } } } })).toEqual(["routes[0].rollout.analysis.slo: needs the route's slo"]);
    expect(problems({ rollout: { stable: "v1", canary: "v2", sticky: { header: "x-user", claim: "sub" } } })).toEqual(["routes[0].rollout.sticky: give one of cookie, header or claim"]);
    expect(problems({ to: "v1", slo: { availability: "100%", window: "30x" } })).toEqual([
      "routes[0].slo.availability: must be above 0% and below 100% (100% leaves no error budget)",
      "routes[0].slo.window: must be whole days or hours, e.g. 30d, 7d, 12h",
    ]);
    expect(problems({ to: "v1", slo: { window: "7d" } })).toEqual(["routes[0].slo: give availability, latency or both"]);
  });
});
