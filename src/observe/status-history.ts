/**
 * The status page's memory. The machine's counters — the /metrics exposition, summed over the
 * workers (worker-metrics.ts) — are read every 10 s into a bounded ring (15 min), so that any
 * recent window (the last minute, each 10 s interval, the seconds since the last reading) is the
 * difference of two readings. Nothing is added on the request path for it: the page reads what
 * /metrics counts anyway, and a worker that dies keeps its counts in the sums (merge.ts), so the
 * differences never go negative.
 */
import { LATENCY_BUCKETS } from "./metrics.ts";

/** Time between readings. */
export const READING_INTERVAL_MS = 10_000;
/** Readings kept: 15 minutes, plus the one the first interval is measured from. */
export const READINGS_KEPT = 91;

/** One route's or cluster's traffic, counted since the start. */
export interface Counts {
  requests: number;
  /** Requests by status class: index 1…5 is 1xx…5xx; 0 is no status (the client left first). */
  classes: number[];
  /** Errors on the upstream's side or the proxy's own (switchyard_proxy_failures_total). */
  failures: number;
  retries: number;
  /** Latency histogram: cumulative counts at each LATENCY_BUCKETS bound, then +Inf (all of them). */
  latency: number[];
  /** Errors by code (switchyard_errors_total). */
  errors: Map<string, number>;
}

/** One endpoint's tries by result (switchyard_upstream_tries_total). */
export interface TryCounts {
  ok: number;
  status5xx: number;
  error: number;
}

/** The counters at one moment. */
export interface Reading {
  /** ms since the epoch. */
  at: number;
  routes: Map<string, Counts>;
  clusters: Map<string, Counts>;
  /** Requests by `route \0 cluster`: which cluster of a route's failover chain took them. */
  routeClusters: Map<string, number>;
  /** Tries by `cluster \0 endpoint`. */
  tries: Map<string, TryCounts>;
  /** Requests in flight by cluster (a gauge: the value at this moment). */
  active: Map<string, number>;
}

export const pairKey = (a: string, b: string) => `${a}\u0000${b}`;

export function emptyCounts(): Counts {
  return { requests: 0, classes: [0, 0, 0, 0, 0, 0], failures: 0, retries: 0, latency: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), errors: new Map() };
}

export function emptyReading(at: number): Reading {
  return { at, routes: new Map(), clusters: new Map(), routeClusters: new Map(), tries: new Map(), active: new Map() };
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const unescape = (v: string) => (v.includes("\\") ? v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c)) : v);

/** The families the page reads; every other line is skipped before its labels are parsed. */
const FAMILIES = new Set([
  "switchyard_requests_total", "switchyard_proxy_failures_total", "switchyard_route_retries_total", "switchyard_retries_total",
  "switchyard_errors_total", "switchyard_request_duration_seconds_bucket", "switchyard_upstream_duration_seconds_bucket",
  "switchyard_upstream_tries_total", "switchyard_requests_active",
]);

const BUCKET_INDEX = new Map<string, number>([...LATENCY_BUCKETS.map((le, i): [string, number] => [String(le), i]), ["+Inf", LATENCY_BUCKETS.length]]);

/** Reads the families the status page needs out of a Prometheus text exposition. */
export function readExposition(text: string, at: number): Reading {
  const r = emptyReading(at);
  const countsOf = (map: Map<string, Counts>, name: string) => {
    let c = map.get(name);
    if (c === undefined) map.set(name, (c = emptyCounts()));
    return c;
  };
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const brace = line.indexOf("{");
    const space = line.lastIndexOf(" ");
    const name = line.slice(0, brace === -1 ? space : brace);
    if (!FAMILIES.has(name)) continue;
    const value = Number(line.slice(space + 1));
    const labels = new Map<string, string>();
    if (brace !== -1) for (const m of line.slice(brace, space).matchAll(LABEL)) labels.set(m[1]!, unescape(m[2]!));
    const route = labels.get("route") ?? "";
    const cluster = labels.get("cluster") ?? "";
    switch (name) {
      case "switchyard_requests_total": {
        const klass = Number((labels.get("status_class") ?? "0")[0]);
        for (const c of [countsOf(r.routes, route), countsOf(r.clusters, cluster)]) {
          c.requests += value;
          if (klass >= 0 && klass <= 5) c.classes[klass]! += value;
        }
        const key = pairKey(route, cluster);
        r.routeClusters.set(key, (r.routeClusters.get(key) ?? 0) + value);
        break;
      }
      case "switchyard_proxy_failures_total":
        countsOf(r.routes, route).failures += value;
        countsOf(r.clusters, cluster).failures += value;
        break;
      case "switchyard_route_retries_total":
        countsOf(r.routes, route).retries += value;
        break;
      case "switchyard_retries_total":
        countsOf(r.clusters, cluster).retries += value;
        break;
      case "switchyard_errors_total": {
        const code = labels.get("code") ?? "";
        for (const c of [countsOf(r.routes, route), countsOf(r.clusters, cluster)]) c.errors.set(code, (c.errors.get(code) ?? 0) + value);
        break;
      }
      case "switchyard_request_duration_seconds_bucket":
      case "switchyard_upstream_duration_seconds_bucket": {
        const i = BUCKET_INDEX.get(labels.get("le") ?? "");
        if (i === undefined) break;
        const c = name === "switchyard_request_duration_seconds_bucket" ? countsOf(r.routes, route) : countsOf(r.clusters, cluster);
        c.latency[i]! += value;
        break;
      }
      case "switchyard_upstream_tries_total": {
        const key = pairKey(cluster, labels.get("endpoint") ?? "");
        let t = r.tries.get(key);
        if (t === undefined) r.tries.set(key, (t = { ok: 0, status5xx: 0, error: 0 }));
        const result = labels.get("result");
        if (result === "ok") t.ok += value;
        else if (result === "5xx") t.status5xx += value;
        else t.error += value;
        break;
      }
      case "switchyard_requests_active":
        r.active.set(cluster, (r.active.get(cluster) ?? 0) + value);
        break;
    }
  }
  return r;
}

/** What happened between two readings of one series (`earlier` undefined: since the start). */
export function countsBetween(later: Counts | undefined, earlier: Counts | undefined): Counts {
  const d = emptyCounts();
  if (later === undefined) return d;
  const e = earlier ?? emptyCounts();
  d.requests = Math.max(0, later.requests - e.requests);
  d.classes = later.classes.map((v, i) => Math.max(0, v - e.classes[i]!));
  d.failures = Math.max(0, later.failures - e.failures);
  d.retries = Math.max(0, later.retries - e.retries);
  d.latency = later.latency.map((v, i) => Math.max(0, v - e.latency[i]!));
  for (const [code, n] of later.errors) {
    const diff = n - (e.errors.get(code) ?? 0);
    if (diff > 0) d.errors.set(code, diff);
  }
  return d;
}

export function triesBetween(later: TryCounts | undefined, earlier: TryCounts | undefined): TryCounts {
  if (later === undefined) return { ok: 0, status5xx: 0, error: 0 };
  return {
    ok: Math.max(0, later.ok - (earlier?.ok ?? 0)),
    status5xx: Math.max(0, later.status5xx - (earlier?.status5xx ?? 0)),
    error: Math.max(0, later.error - (earlier?.error ?? 0)),
  };
}

/**
 * The q-quantile (0…1) of a latency histogram's cumulative bucket counts, in ms, interpolated
 * within its bucket as Prometheus's histogram_quantile does; null without observations. Beyond
 * the last finite bound it is that bound.
 */
export function quantileMs(latency: readonly number[], q: number): number | null {
  const total = latency[latency.length - 1]!;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
    if (latency[i]! >= rank) {
      const lower = i === 0 ? 0 : LATENCY_BUCKETS[i - 1]!;
      const below = i === 0 ? 0 : latency[i - 1]!;
      const inBucket = latency[i]! - below;
      const share = inBucket > 0 ? (rank - below) / inBucket : 1;
      return (lower + (LATENCY_BUCKETS[i]! - lower) * share) * 1000;
    }
  }
  return LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1]! * 1000;
}

/**
 * The ring of readings, oldest first. One per process (the counters are per process too): worker 0
 * keeps it for the machine, since its readings are the sums over all workers.
 */
export class ReadingRing {
  private readonly readings: Reading[] = [];
  private timer: Timer | undefined;
  private reading: Promise<void> | undefined;

  constructor(
    private readonly read: () => Reading | Promise<Reading>,
    private readonly kept = READINGS_KEPT,
  ) {}

  /** Takes a reading now (the base of the first interval), then one every `interval` ms; idempotent. */
  start(interval = READING_INTERVAL_MS): void {
    if (this.timer !== undefined) return;
    void this.take();
    this.timer = setInterval(() => void this.take(), interval);
    this.timer.unref();
  }

  /** Takes one reading now (a reading still under way is awaited instead). */
  take(): Promise<void> {
    this.reading ??= (async () => {
      try {
        this.add(await this.read());
      } catch (e) {
        console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "status page: reading the counters failed", error: String(e) }));
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  add(reading: Reading): void {
    this.readings.push(reading);
    if (this.readings.length > this.kept) this.readings.shift();
  }

  /** Oldest first. */
  all(): readonly Reading[] {
    return this.readings;
  }
}

/** The newest of `readings` (oldest first) taken at least `ms` before `now`, else the oldest (undefined: none). */
export function readingBefore(readings: readonly Reading[], now: number, ms: number): Reading | undefined {
  for (let i = readings.length - 1; i >= 0; i--) if (readings[i]!.at <= now - ms) return readings[i];
  return readings[0];
}
