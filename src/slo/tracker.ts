/**
 * The machine's SLOs, kept by the rollout controller: every look it adds what each process
 * counted since the last one (processes report cumulative counts; a restarted one starts again at
 * 0) to each route's windows, saves changed hours to the state file once a minute, and restores
 * them at start, so that the budget over a 30-day window survives restarts.
 */
import type { WorkerSnapshot } from "../rollout/sync.ts";
import type { StateFile } from "../rollout/store.ts";
import type { Slo } from "./schema.ts";
import { type SliStatus, SloWindows, type Totals } from "./windows.ts";

const HOUR = 3_600_000;
const SAVE_EVERY_MS = 60_000;

/** The key SLO hours are saved under: the route, and the latency threshold its slow counts used. */
export const sloKey = (route: string, slo: Slo): string => `${route}|${slo.latency?.threshold ?? 0}`;

export interface SloView {
  route: string;
  window_hours: number;
  latency_threshold_ms: number | null;
  availability: SliStatus | null;
  latency: SliStatus | null;
}

export class SloTracker {
  private readonly windows = new Map<string, { key: string; windows: SloWindows }>();
  /** Last cumulative counts seen, by process and route. */
  private readonly seen = new Map<number, Map<string, number[]>>();
  private lastSave = 0;

  /** The SLOs of the config in force (unchanged ones keep their windows). Returns those that need restoring. */
  configure(slos: ReadonlyMap<string, Slo>): { route: string; key: string; windows: SloWindows }[] {
    const added: { route: string; key: string; windows: SloWindows }[] = [];
    for (const route of [...this.windows.keys()]) if (!slos.has(route)) this.windows.delete(route);
    for (const [route, slo] of slos) {
      const key = sloKey(route, slo);
      const before = this.windows.get(route);
      if (before !== undefined && before.key === key && JSON.stringify(before.windows.slo) === JSON.stringify(slo)) continue;
      const entry = { key, windows: new SloWindows(slo) };
      this.windows.set(route, entry);
      added.push({ route, ...entry });
    }
    return added;
  }

  /** Adds what each process counted since its previous snapshot. */
  add(snapshots: readonly WorkerSnapshot[], now: number): void {
    for (const snap of snapshots) {
      let byRoute = this.seen.get(snap.pid);
      if (byRoute === undefined) this.seen.set(snap.pid, (byRoute = new Map()));
      for (const { route, counts } of snap.slo) {
        const before = byRoute.get(route);
        byRoute.set(route, counts);
        const entry = this.windows.get(route);
        if (entry === undefined) continue;
        // Counts only grow; smaller ones are a fresh start (another threshold, a new process).
        const delta = (i: number) => (before === undefined || counts[i]! < before[i]! ? counts[i]! : counts[i]! - before[i]!);
        entry.windows.add(now, delta(0), delta(1), delta(2));
      }
    }
  }

  async restore(file: StateFile, entries: { key: string; windows: SloWindows }[], now: number): Promise<void> {
    for (const { key, windows } of entries) {
      const from = Math.floor((now - windows.slo.window) / HOUR);
      for (const [hour, totals] of await file.sloHours(key, from)) windows.restoreHour(hour, totals);
    }
  }

  /** Saves changed hours, at most once a minute (or now with `force`). */
  async save(file: StateFile, now: number, force = false): Promise<void> {
    if (!force && now - this.lastSave < SAVE_EVERY_MS) return;
    this.lastSave = now;
    for (const { key, windows } of this.windows.values()) {
      if (windows.dirtyHours.size === 0) continue;
      const hours: [number, Totals][] = [];
      for (const hour of windows.dirtyHours) {
        const totals = windows.hour(hour);
        if (totals !== undefined) hours.push([hour, totals]);
      }
      windows.dirtyHours.clear();
      await file.saveSloHours(key, hours, Math.floor((now - windows.slo.window) / HOUR));
    }
  }

  /** Forgets processes not heard from (their counts were added already). */
  forget(pids: ReadonlySet<number>): void {
    for (const pid of this.seen.keys()) if (!pids.has(pid)) this.seen.delete(pid);
  }

  view(now: number): SloView[] {
    return [...this.windows].map(([route, { windows }]) => {
      const status = windows.status(now);
      return {
        route,
        window_hours: windows.slo.window / HOUR,
        latency_threshold_ms: windows.slo.latency?.threshold ?? null,
        availability: status.availability ?? null,
        latency: status.latency ?? null,
      };
    });
  }
}
