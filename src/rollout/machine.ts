/**
 * The rollout state machine, pure: a state and the step's figures in, the next state out. Time is
 * a parameter (wall-clock ms), so tests drive it without waiting. The controller (controller.ts)
 * feeds it the machine's counts, persists what it returns and hands it to every worker.
 *
 *   progressing ──step passed──▶ progressing (next step) … ──last step passed──▶ promoted
 *        │  ▲ ──too few canary requests at the step's end──▶ (same step, extended)
 *        │  └──────────── resume ───── paused ◀── pause
 *        └──any check failed (with ≥ min_requests)──▶ rolled_back        promote / abort: by hand
 */
import type { Rollout } from "./schema.ts";
import type { SideFigures } from "./figures.ts";

export type Phase = "progressing" | "paused" | "promoted" | "rolled_back";

/** One check of the analysis, as evaluated. */
export interface CheckResult {
  check: "error_rate" | "error_rate_over_stable" | "p99" | "p99_over_stable" | "p99_ratio" | "slo_burn_availability" | "slo_burn_latency";
  value: number;
  limit: number;
  passed: boolean;
}

export interface Figures {
  canary: SideFigures;
  stable: SideFigures;
}

export interface HistoryEntry {
  at: string;
  event: string;
  from: Phase;
  to: Phase;
  step: number;
  /** The canary's share after the event, in percent. */
  weight: number;
  reason: string | null;
  figures: Figures | null;
}

export interface RolloutState {
  /** This run of the rollout (`<definition hash>.<generation>`): sticky cookies name it. */
  id: string;
  /** Hash of the rollout's definition: a reload that changes it starts a new run. */
  definition: string;
  /** Runs of this definition so far (a restart by hand starts the next). */
  generation: number;
  phase: Phase;
  /** Index into the definition's steps. */
  step: number;
  /** The canary's share in basis points (0–10,000). */
  weight: number;
  /** +1 at every change of step or weight: counts are per epoch (a worker resets them when it changes). */
  epoch: number;
  /** Wall-clock ms when the current step began (moved forward by the time spent paused). */
  step_started_at: number;
  paused_at: number | null;
  /** Times the current step was extended for too few canary requests. */
  extensions: number;
  /** Why the last transition happened (for a rollback: the checks that failed, in words). */
  reason: string | null;
  /** The checks that failed a rollback. */
  failed: CheckResult[] | null;
  /** The stable cluster's figures from the last window with enough requests (relative checks when a step has too few). */
  baseline: SideFigures | null;
  history: HistoryEntry[];
  updated_at: number;
}

/** Kept per rollout (oldest dropped first). */
const HISTORY_MAX = 100;

export const basisPoints = (fraction: number): number => Math.round(fraction * 10_000);

export function freshState(def: Rollout, definition: string, generation: number, now: number): RolloutState {
  return {
    id: `${definition.slice(0, 10)}.${generation}`,
    definition,
    generation,
    phase: "progressing",
    step: 0,
    weight: basisPoints(def.steps[0]!),
    epoch: 0,
    step_started_at: now,
    paused_at: null,
    extensions: 0,
    reason: null,
    failed: null,
    baseline: null,
    history: [{ at: new Date(now).toISOString(), event: "started", from: "progressing", to: "progressing", step: 0, weight: def.steps[0]! * 100, reason: null, figures: null }],
    updated_at: now,
  };
}

/** The SLO a rollout's `analysis.slo` judges the canary by (the route's). */
export interface SloTargets {
  availability?: number;
  latency?: { target: number };
}

/** The analysis' checks on a window's figures. Relative checks need `stable` (undefined: skipped). */
export function runChecks(def: Rollout, canary: SideFigures, stable: SideFigures | undefined, slo: SloTargets | undefined): CheckResult[] {
  const a = def.analysis;
  const out: CheckResult[] = [];
  const add = (check: CheckResult["check"], value: number, limit: number | undefined) => {
    if (limit !== undefined) out.push({ check, value, limit, passed: value <= limit });
  };
  add("error_rate", canary.error_rate, a.error_rate?.max);
  add("p99", canary.p99_ms, a.p99?.max);
  if (stable !== undefined) {
    add("error_rate_over_stable", canary.error_rate - stable.error_rate, a.error_rate?.max_over_stable);
    add("p99_over_stable", canary.p99_ms - stable.p99_ms, a.p99?.max_over_stable);
    if (stable.p99_ms > 0) add("p99_ratio", canary.p99_ms / stable.p99_ms, a.p99?.max_ratio);
  }
  if (a.slo !== undefined && slo !== undefined) {
    if (slo.availability !== undefined) add("slo_burn_availability", canary.error_rate / (1 - slo.availability), a.slo.max_burn_rate);
    if (slo.latency !== undefined) add("slo_burn_latency", canary.slow_rate / (1 - slo.latency.target), a.slo.max_burn_rate);
  }
  return out;
}

const pct = (f: number) => `${+(f * 100).toFixed(3)}%`;

/** A failed check in words: "canary error rate 5.2% > 1%". */
export function describeCheck(c: CheckResult): string {
  switch (c.check) {
    case "error_rate": return `canary error rate ${pct(c.value)} > ${pct(c.limit)}`;
    case "error_rate_over_stable": return `canary error rate ${pct(c.value)} above stable's > ${pct(c.limit)}`;
    case "p99": return `canary p99 ${c.value} ms > ${c.limit} ms`;
    case "p99_over_stable": return `canary p99 ${+c.value.toFixed(1)} ms above stable's > ${c.limit} ms`;
    case "p99_ratio": return `canary p99 ${+c.value.toFixed(2)}× stable's > ${c.limit}×`;
    case "slo_burn_availability": return `canary burns the availability budget ${+c.value.toFixed(2)}× > ${c.limit}×`;
    case "slo_burn_latency": return `canary burns the latency budget ${+c.value.toFixed(2)}× > ${c.limit}×`;
  }
}

/** A state change: the new state and what to log. */
export interface Transition {
  event: "advanced" | "promoted" | "rolled_back" | "extended" | "paused" | "resumed" | "aborted" | "restarted";
  state: RolloutState;
}

function move(state: RolloutState, event: Transition["event"], now: number, change: Partial<RolloutState>, figures: Figures | null): Transition {
  const next: RolloutState = { ...state, ...change, updated_at: now };
  if (change.epoch === undefined && (next.step !== state.step || next.weight !== state.weight)) next.epoch = state.epoch + 1;
  const entry: HistoryEntry = { at: new Date(now).toISOString(), event, from: state.phase, to: next.phase, step: next.step, weight: next.weight / 100, reason: next.reason, figures };
  next.history = [...state.history, entry].slice(-HISTORY_MAX);
  return { event, state: next };
}

/**
 * One look at a progressing rollout: the step's figures so far (this epoch, every worker) decide.
 * A failed check rolls back at once (once the canary has min_requests); the step passes when its
 * time is up with enough canary requests; with too few it is extended. Undefined: nothing changes.
 */
export function evaluate(def: Rollout, state: RolloutState, figures: Figures, now: number, slo?: SloTargets): Transition | undefined {
  if (state.phase !== "progressing") return undefined;
  const { canary, stable } = figures;
  const enough = canary.requests >= def.min_requests;
  const baseline = stable.requests >= def.min_requests ? stable : state.baseline ?? undefined;
  if (enough) {
    const failed = runChecks(def, canary, baseline, slo).filter((c) => !c.passed);
    if (failed.length > 0) {
      return move(state, "rolled_back", now, { phase: "rolled_back", weight: 0, reason: failed.map(describeCheck).join("; "), failed, baseline: baseline ?? null }, figures);
    }
  }
  const elapsed = now - state.step_started_at;
  if (elapsed < def.step_duration) return undefined;
  if (!enough) {
    // Extended, never passed: logged once per step_duration of waiting.
    if (elapsed < def.step_duration * (state.extensions + 1)) return undefined;
    return move(state, "extended", now, { extensions: state.extensions + 1, reason: `${canary.requests} canary requests < min_requests ${def.min_requests}` }, figures);
  }
  const last = state.step === def.steps.length - 1;
  if (last) return move(state, "promoted", now, { phase: "promoted", weight: 10_000, reason: `all ${def.steps.length} steps passed`, failed: null, baseline: baseline ?? null }, figures);
  const step = state.step + 1;
  return move(state, "advanced", now, {
    step, weight: basisPoints(def.steps[step]!), step_started_at: now, extensions: 0, reason: `step ${state.step + 1} passed`, failed: null, baseline: baseline ?? null,
  }, figures);
}

export type Action = "pause" | "resume" | "promote" | "abort" | "restart";

/** An operator's action, or a message why it does not apply to the state. */
export function act(def: Rollout, state: RolloutState, action: Action, now: number, figures: Figures | null): Transition | string {
  const live = state.phase === "progressing" || state.phase === "paused";
  switch (action) {
    case "pause":
      if (state.phase !== "progressing") return `cannot pause a rollout that is ${state.phase}`;
      return move(state, "paused", now, { phase: "paused", paused_at: now, reason: "paused by an operator" }, figures);
    case "resume":
      if (state.phase !== "paused") return `cannot resume a rollout that is ${state.phase}`;
      return move(state, "resumed", now, { phase: "progressing", paused_at: null, step_started_at: state.step_started_at + (now - (state.paused_at ?? now)), reason: "resumed by an operator" }, figures);
    case "promote":
      if (!live) return `cannot promote a rollout that is ${state.phase}`;
      return move(state, "promoted", now, { phase: "promoted", weight: 10_000, paused_at: null, reason: "promoted by an operator" }, figures);
    case "abort":
      if (!live) return `cannot abort a rollout that is ${state.phase}`;
      return move(state, "aborted", now, { phase: "rolled_back", weight: 0, paused_at: null, reason: "aborted by an operator" }, figures);
    case "restart": {
      const fresh = freshState(def, state.definition, state.generation + 1, now);
      return move(state, "restarted", now, { ...fresh, history: state.history, reason: "restarted by an operator", epoch: state.epoch + 1 }, figures);
    }
  }
}
