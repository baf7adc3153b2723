/** A rollout as the admin API and the status page show it. */
import type { SideFigures } from "./figures.ts";
import { type CheckResult, type Figures, type HistoryEntry, type Phase, runChecks, type SloTargets } from "./machine.ts";
import type { RolloutHandle } from "./registry.ts";

/** One worker's view of a rollout: what it has in force (with workers, all must agree). */
export interface WorkerView {
  worker: number;
  pid: number;
  rollout_id: string;
  epoch: number;
  state: Phase;
  weight: number;
  applied_at: string;
  /** Requests of the current epoch this worker counted (canary, stable). */
  requests: { canary: number; stable: number };
}

export interface RolloutView {
  route: string;
  rollout_id: string;
  state: Phase;
  clusters: { stable: string; canary: string };
  /** 1-based; of `steps`. */
  step: number;
  steps: number[];
  /** The canary's share now, percent. */
  weight: number;
  epoch: number;
  step_started_at: string;
  step_elapsed_ms: number;
  step_duration_ms: number;
  min_requests: number;
  extensions: number;
  /** The current step over every worker; once promoted or rolled back, the figures that decided it. */
  figures: { canary: SideFigures; stable: SideFigures };
  /** The analysis on those figures now (relative checks against the stable side, or the last baseline). */
  checks: CheckResult[];
  reason: string | null;
  failed: CheckResult[] | null;
  history: HistoryEntry[];
  workers: WorkerView[];
}

export function rolloutView(handle: RolloutHandle, current: Figures, workers: WorkerView[], now: number, slo: SloTargets | undefined): RolloutView {
  const s = handle.state;
  const def = handle.def;
  const ended = s.phase === "promoted" || s.phase === "rolled_back";
  const figures = (ended ? s.history.findLast((h) => h.figures !== null)?.figures : undefined) ?? current;
  const stable = figures.stable.requests >= def.min_requests ? figures.stable : s.baseline ?? undefined;
  const until = s.phase === "paused" && s.paused_at !== null ? s.paused_at : now;
  return {
    route: handle.route,
    rollout_id: s.id,
    state: s.phase,
    clusters: { stable: def.stable, canary: def.canary },
    step: s.step + 1,
    steps: def.steps.map((f) => +(f * 100).toFixed(4)),
    weight: s.weight / 100,
    epoch: s.epoch,
    step_started_at: new Date(s.step_started_at).toISOString(),
    step_elapsed_ms: Math.max(0, Math.round(until - s.step_started_at)),
    step_duration_ms: def.step_duration,
    min_requests: def.min_requests,
    extensions: s.extensions,
    figures,
    checks: runChecks(def, figures.canary, stable, slo),
    reason: s.reason,
    failed: s.failed,
    history: s.history,
    workers,
  };
}
