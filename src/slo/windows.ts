/**
 * An SLO's counts over time, for its error budget and burn rates: per minute for the last 6 hours
 * (the burn-rate windows 5m, 30m, 1h, 6h) and per hour over the SLO window (the budget). Fixed
 * rings of Float64Array, [requests, errors, slow] per slot; a slot is reused when its time has
 * passed. Pure: time is given.
 */
import type { Slo } from "./schema.ts";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const MINUTE_SLOTS = 6 * 60;

/** The standard multi-window pairs (Google SRE workbook): a page when both windows burn fast. */
export const BURN_WINDOWS = [
  { name: "5m", ms: 5 * MINUTE },
  { name: "30m", ms: 30 * MINUTE },
  { name: "1h", ms: HOUR },
  { name: "6h", ms: 6 * HOUR },
] as const;

/** [requests, errors, slow] */
export type Totals = [number, number, number];

class Ring {
  private readonly counts: Float64Array;
  /** The period number (time / size) each slot holds; -1: empty. */
  private readonly periods: Float64Array;
  constructor(private readonly slots: number, private readonly size: number) {
    this.counts = new Float64Array(slots * 3);
    this.periods = new Float64Array(slots).fill(-1);
  }

  add(now: number, requests: number, errors: number, slow: number): void {
    const period = Math.floor(now / this.size);
    const i = period % this.slots;
    if (this.periods[i] !== period) {
      this.periods[i] = period;
      this.counts.fill(0, i * 3, i * 3 + 3);
    }
    this.counts[i * 3]! += requests;
    this.counts[i * 3 + 1]! += errors;
    this.counts[i * 3 + 2]! += slow;
  }

  /** Sums the slots of the last `span` ms (the current slot included, whole). */
  sum(now: number, span: number): Totals {
    const current = Math.floor(now / this.size);
    const oldest = current - Math.max(1, Math.round(span / this.size)) + 1;
    const out: Totals = [0, 0, 0];
    for (let i = 0; i < this.slots; i++) {
      const p = this.periods[i]!;
      if (p < oldest || p > current) continue;
      out[0] += this.counts[i * 3]!;
      out[1] += this.counts[i * 3 + 1]!;
      out[2] += this.counts[i * 3 + 2]!;
    }
    return out;
  }

  /** The slot of one period, if held ([requests, errors, slow]). */
  period(period: number): Totals | undefined {
    const i = period % this.slots;
    if (this.periods[i] !== period) return undefined;
    return [this.counts[i * 3]!, this.counts[i * 3 + 1]!, this.counts[i * 3 + 2]!];
  }

  /** Sets a whole period's slot (restoring from the state file). */
  set(period: number, totals: Totals): void {
    const i = period % this.slots;
    this.periods[i] = period;
    this.counts.set(totals, i * 3);
  }
}

export interface SliStatus {
  objective: number;
  /** Share of the window's budget left: 1 untouched, 0 spent, below 0 overspent. */
  budget_remaining: number;
  /** Bad share over the whole window. */
  bad_ratio: number;
  burn_rates: Record<(typeof BURN_WINDOWS)[number]["name"], number>;
}

export class SloWindows {
  private readonly minutes = new Ring(MINUTE_SLOTS, MINUTE);
  private readonly hours: Ring;
  /** Hours changed since the last save (to the state file). */
  readonly dirtyHours = new Set<number>();

  constructor(readonly slo: Slo) {
    this.hours = new Ring(Math.ceil(slo.window / HOUR) + 1, HOUR);
  }

  add(now: number, requests: number, errors: number, slow: number): void {
    if (requests === 0 && errors === 0 && slow === 0) return;
    this.minutes.add(now, requests, errors, slow);
    this.hours.add(now, requests, errors, slow);
    this.dirtyHours.add(Math.floor(now / HOUR));
  }

  hour(hour: number): Totals | undefined {
    return this.hours.period(hour);
  }

  restoreHour(hour: number, totals: Totals): void {
    this.hours.set(hour, totals);
  }

  /** Status per SLI the SLO declares. */
  status(now: number): { availability?: SliStatus; latency?: SliStatus } {
    const whole = this.hours.sum(now, this.slo.window);
    const windows = BURN_WINDOWS.map((w) => [w.name, this.minutes.sum(now, w.ms)] as const);
    const sli = (objective: number, bad: 1 | 2): SliStatus => {
      const allowed = 1 - objective;
      const ratio = (t: Totals) => (t[0] > 0 ? t[bad] / t[0] : 0);
      return {
        objective,
        budget_remaining: 1 - ratio(whole) / allowed,
        bad_ratio: ratio(whole),
        burn_rates: Object.fromEntries(windows.map(([name, t]) => [name, ratio(t) / allowed])) as SliStatus["burn_rates"],
      };
    };
    return {
      availability: this.slo.availability !== undefined ? sli(this.slo.availability, 1) : undefined,
      latency: this.slo.latency !== undefined ? sli(this.slo.latency.target, 2) : undefined,
    };
  }
}
