/**
 * This process's rollouts and SLO counters, kept across reloads: a runtime build acquires one
 * handle per route with a rollout (the same handle while the definition stays the same, so a
 * reload keeps the state and the step's counts) and commits the set once the build succeeded.
 * Handles hold the live state every request reads (the canary's weight) and the counts the log
 * phase adds to; the controller (controller.ts) changes their state, in this process and, over
 * IPC, in every worker.
 */
import { type Figures, freshState, type RolloutState } from "./machine.ts";
import { SIDE_SIZE, sideFigures } from "./figures.ts";
import type { Rollout } from "./schema.ts";
import type { Slo } from "../slo/schema.ts";

/** Hash of a rollout's definition (its validated config). */
export function definitionHash(def: Rollout): string {
  return new Bun.CryptoHasher("sha256").update(JSON.stringify(def)).digest("hex");
}

/** Offsets of the two sides in a handle's counts. */
export const STABLE = 0;
export const CANARY = SIDE_SIZE;

export class RolloutHandle {
  /** [stable side, canary side] of the current epoch, in this process (figures.ts layout). */
  readonly counts = new Float64Array(2 * SIDE_SIZE);
  /** The canary's share in basis points, as requests read it. */
  weight: number;
  /** Wall-clock ms when this process put the current state in force. */
  appliedAt = Date.now();
  /** Requests slower than this (the route's SLO latency threshold) count as slow; 0: none. */
  slowAboveMs: number;
  /** The per-request Set-Cookie values of the current run ([stable, canary]); made when the run changes. */
  cookies: readonly [string, string] | undefined;

  constructor(readonly route: string, readonly def: Rollout, readonly definition: string, public state: RolloutState, slo: Slo | undefined) {
    this.weight = state.weight;
    this.slowAboveMs = slo?.latency?.threshold ?? 0;
  }

  /** Counts are kept while the rollout may still change. */
  get measuring(): boolean {
    return this.state.phase === "progressing" || this.state.phase === "paused";
  }

  /** Puts a state in force here; a new epoch (another step or weight, another run) starts its counts at 0. */
  apply(state: RolloutState): void {
    if (state.epoch !== this.state.epoch || state.id !== this.state.id) this.counts.fill(0);
    if (state.id !== this.state.id) this.cookies = undefined;
    this.state = state;
    this.weight = state.weight;
    this.appliedAt = Date.now();
  }

  /** This process's figures of the current epoch. */
  localFigures(): Figures {
    return { stable: sideFigures(this.counts, STABLE), canary: sideFigures(this.counts, CANARY) };
  }
}

/** What a commit changed, for the controller: runs that began here (new, or replacing another definition). */
export interface RolloutChange {
  handle: RolloutHandle;
  /** The handle of another definition this one replaced (a reload that changed the rollout). */
  replaced?: RolloutHandle;
  /** The state came from the state file (a restart of the process). */
  restored: boolean;
}

class RolloutRegistry {
  private live = new Map<string, RolloutHandle>();
  /** States read from the state file at start, by route; used once, by the first build. */
  private restored = new Map<string, RolloutState>();
  private readonly restoredHandles = new WeakSet<RolloutHandle>();
  private onChange: ((changes: RolloutChange[]) => void) | undefined;
  /** Wall-clock ms for the runs that begin here (the controller's clock, injectable). */
  now: () => number = Date.now;

  /** States from the state file, for the first build (a restart resumes where it was). */
  preload(states: Iterable<[string, RolloutState]>): void {
    this.restored = new Map(states);
  }

  /** The handle for a route's rollout: the live one when the definition is unchanged, else a new run. */
  acquire(route: string, def: Rollout, slo: Slo | undefined, now = this.now()): RolloutHandle {
    const definition = definitionHash(def);
    const existing = this.live.get(route);
    if (existing !== undefined && existing.definition === definition) {
      existing.slowAboveMs = slo?.latency?.threshold ?? 0;
      return existing;
    }
    const saved = this.restored.get(route);
    if (existing === undefined && saved !== undefined && saved.definition === definition) {
      const handle = new RolloutHandle(route, def, definition, saved, slo);
      this.restoredHandles.add(handle);
      return handle;
    }
    // A new definition starts at its first step. The first run's id is the same in every worker
    // (it depends on the definition only), so a cookie set by one worker is honoured by the others.
    const generation = saved !== undefined && saved.definition === definition ? saved.generation : 0;
    return new RolloutHandle(route, def, definition, freshState(def, definition, generation, now), slo);
  }

  /** The rollouts of a runtime that was built and is now in force. */
  commit(handles: readonly RolloutHandle[]): void {
    const changes: RolloutChange[] = [];
    const next = new Map<string, RolloutHandle>();
    for (const h of handles) {
      const before = this.live.get(h.route);
      if (before !== h) changes.push({ handle: h, replaced: before, restored: this.restoredHandles.has(h) });
      next.set(h.route, h);
    }
    this.live = next;
    this.restored.clear();
    if (changes.length > 0) this.onChange?.(changes);
  }

  get(route: string): RolloutHandle | undefined {
    return this.live.get(route);
  }

  all(): RolloutHandle[] {
    return [...this.live.values()];
  }

  /** The controller hears of every run that begins here (one listener: the process's controller). */
  listen(onChange: ((changes: RolloutChange[]) => void) | undefined): void {
    this.onChange = onChange;
  }
}

/** The process's rollouts (one registry per process, as its metrics registry). */
export const rollouts = new RolloutRegistry();

/** Cumulative SLO counts of this process per route ([requests, errors, slow]), never reset: the controller takes differences. */
class SloCounts {
  private readonly byRoute = new Map<string, { counts: Float64Array; slo: Slo }>();

  acquire(route: string, slo: Slo): Float64Array {
    let entry = this.byRoute.get(route);
    if (entry === undefined || entry.slo.latency?.threshold !== slo.latency?.threshold) this.byRoute.set(route, (entry = { counts: new Float64Array(3), slo }));
    entry.slo = slo;
    return entry.counts;
  }

  entries(): [string, Float64Array][] {
    return [...this.byRoute].map(([route, e]) => [route, e.counts]);
  }
}

export const sloCounts = new SloCounts();
