/**
 * What the status page shows (GET /status.json on the admin listener): per route and cluster the
 * last minute's traffic (rate, error rate, status classes, the proxy's own failures, p50/p99,
 * retries) and 15 minutes of charts, from the machine's counters (status-history.ts); per endpoint
 * its health check, ejection, tries and last failure; each route's failover chain; the config's
 * version and last changes. Each route, cluster and endpoint is judged ok / degraded / failing /
 * idle (status-judge.ts), so that an outage is marked even where no health check or outlier detection
 * is configured. Endpoint health, ejections and breakers are the serving process's view (worker 0
 * with workers); traffic, tries and last failures are the machine's.
 */
import type { ConfigChange, RuntimeRef } from "./runtime-ref.ts";
import type { Cluster } from "../upstream/cluster.ts";
import { lastFailureMessage } from "../upstream/health/tries.ts";
import { isAvailable } from "../upstream/health/state.ts";
import { type EndpointJudged, errorCount, judgeCluster, judgeEndpoint, judgeRoute, type State, WINDOW_MS } from "../observe/status-judge.ts";
import { type Counts, countsBetween, emptyReading, pairKey, quantileMs, type Reading, READING_INTERVAL_MS, ReadingRing, readExposition, readingBefore, triesBetween } from "../observe/status-history.ts";
import { type EndpointFailure, machineMetrics } from "../observe/worker-metrics.ts";
import type { Runtime } from "../proxy/context.ts";

export type { State } from "../observe/status-judge.ts";

/** One window of a route's or cluster's traffic. */
export interface Traffic {
  requests: number;
  /** Requests per second. */
  rate: number;
  /** Share (0…1) answered 5xx or failed by the proxy; null without requests. */
  error_rate: number | null;
  classes: { "2xx": number; "3xx": number; "4xx": number; "5xx": number; failed: number };
  retries: number;
  p50_ms: number | null;
  p99_ms: number | null;
  /** The most frequent error code, if any. */
  top_error: { code: string; count: number } | null;
}

/** Per interval (oldest first; the last one is the interval under way): requests/s, errors/s, p99. */
export interface Chart {
  at: number[];
  rate: number[];
  errors: number[];
  p99_ms: (number | null)[];
}

export interface ChainLink {
  cluster: string;
  role: "primary" | "weighted" | "override" | "failover" | "call";
  weight: number | null;
  /** Requests of this route go there now (what the route's cluster choice picks at this moment). */
  serving: boolean;
  /** This route's requests it took in the window. */
  requests: number;
  state: State;
  available: number;
  endpoints: number;
}

export interface RouteStatus {
  name: string;
  kind: "cluster" | "weighted" | "compose" | "module";
  state: State;
  reasons: string[];
  chain: ChainLink[];
  /** Requests since the start (over every worker). */
  requests: number;
  traffic: Traffic;
  chart: Chart;
}

export interface EndpointStatus extends EndpointJudged {
  address: string;
  weight: number;
  health_check: "passing" | "failing" | "none";
  ejected_for_ms: number;
  ejections: number;
  /** Tries in the window: all, failed, and their share. */
  tries: { total: number; ok: number; status_5xx: number; error: number; error_rate: number | null };
  last_failure: { code: string; message: string; at: string; ago_s: number } | null;
  /** In flight from the serving process. */
  active: number;
}

export interface ClusterStatus {
  name: string;
  state: State;
  reasons: string[];
  balancer: string;
  breaker: "closed" | "open" | "half_open" | "none";
  /** Requests in flight (over every worker). */
  in_flight: number;
  available: number;
  panic: boolean;
  traffic: Traffic;
  chart: Chart;
  endpoints: EndpointStatus[];
}

export interface StatusJson {
  version: number;
  version_info: string | null;
  time: string;
  workers: number;
  window_s: number;
  interval_s: number;
  summary: { state: State; headline: string; failing: { routes: string[]; clusters: string[]; endpoints: string[] }; degraded: { routes: string[]; clusters: string[] } };
  routes: RouteStatus[];
  clusters: ClusterStatus[];
  config_changes: { at: string; source: string; result: "ok" | "refused"; version: number; problem: string | null; problems: number }[];
}

export interface StatusInputs {
  runtime: Runtime;
  versionInfo: string | undefined;
  changes: readonly ConfigChange[];
  /** The counters now, the readings so far (oldest first), the endpoints' last failures over the workers. */
  live: Reading;
  readings: readonly Reading[];
  failures: readonly EndpointFailure[];
  workers: number;
  /** performance.now(), for ejection times. */
  monotonicNow?: number;
}

/** The interval under way is charted once it is this long (a shorter one says little: a rate over 0.2 s). */
const LIVE_POINT_MIN_MS = 2000;

/** Each endpoint's last failure, as this process saw it (what it contributes to the machine's). */
export function endpointFailures(runtime: Runtime): EndpointFailure[] {
  const out: EndpointFailure[] = [];
  for (const c of runtime.clusters.values()) {
    for (const e of c.endpoints) {
      const h = e.health;
      if (h.lastFailureAt > 0) out.push({ cluster: c.name, endpoint: e.address, at: h.lastFailureAt, code: h.lastFailureCode, message: lastFailureMessage(h) });
    }
  }
  return out;
}

function traffic(d: Counts, seconds: number): Traffic {
  let top: { code: string; count: number } | null = null;
  for (const [code, count] of d.errors) if (top === null || count > top.count) top = { code, count };
  return {
    requests: d.requests,
    rate: seconds > 0 ? d.requests / seconds : 0,
    error_rate: d.requests > 0 ? errorCount(d) / d.requests : null,
    classes: { "2xx": d.classes[2]!, "3xx": d.classes[3]!, "4xx": d.classes[4]!, "5xx": d.classes[5]!, failed: d.failures },
    retries: d.retries,
    p50_ms: quantileMs(d.latency, 0.5),
    p99_ms: quantileMs(d.latency, 0.99),
    top_error: top,
  };
}

function chart(points: readonly Reading[], pick: (r: Reading) => Counts | undefined): Chart {
  const c: Chart = { at: [], rate: [], errors: [], p99_ms: [] };
  for (let i = 1; i < points.length; i++) {
    const seconds = (points[i]!.at - points[i - 1]!.at) / 1000;
    if (seconds <= 0) continue;
    const d = countsBetween(pick(points[i]!), pick(points[i - 1]!));
    c.at.push(points[i]!.at);
    c.rate.push(round(d.requests / seconds));
    c.errors.push(round(errorCount(d) / seconds));
    c.p99_ms.push(nullableRound(quantileMs(d.latency, 0.99)));
  }
  return c;
}

const round = (n: number) => Math.round(n * 100) / 100;
const nullableRound = (n: number | null) => (n === null ? null : round(n));

function roundTraffic(t: Traffic): Traffic {
  return { ...t, rate: round(t.rate), error_rate: t.error_rate === null ? null : Math.round(t.error_rate * 10_000) / 10_000, p50_ms: nullableRound(t.p50_ms), p99_ms: nullableRound(t.p99_ms) };
}

/** The clusters a route's requests go to now: its cluster choice asked once per primary (as a request without override would be). */
function servingClusters(route: Runtime["routes"][number]): Set<string> {
  const serving = new Set<string>();
  const choose = route.chooseCluster;
  if (choose === undefined) return serving;
  const none = new Headers();
  const weighted = route.config.weighted_clusters?.filter((w) => w.weight > 0);
  if (weighted === undefined) serving.add(choose(none, () => 0).name);
  else {
    const total = weighted.reduce((sum, w) => sum + w.weight, 0);
    let before = 0;
    for (const w of weighted) {
      serving.add(choose(none, () => (before + w.weight / 2) / total).name);
      before += w.weight;
    }
  }
  return serving;
}

function chainOf(route: Runtime["routes"][number]): { kind: RouteStatus["kind"]; links: { cluster: string; role: ChainLink["role"]; weight: number | null }[] } {
  const c = route.config;
  const failover = (c.failover ?? []).map((cluster) => ({ cluster, role: "failover" as const, weight: null }));
  const override = c.override ? [{ cluster: c.override.cluster, role: "override" as const, weight: null }] : [];
  if (c.to !== undefined) return { kind: "cluster", links: [{ cluster: c.to, role: "primary", weight: null }, ...override, ...failover] };
  if (c.weighted_clusters !== undefined) {
    return { kind: "weighted", links: [...c.weighted_clusters.map((w) => ({ cluster: w.cluster, role: "weighted" as const, weight: w.weight })), ...override, ...failover] };
  }
  if (c.compose !== undefined) {
    const clusters = [...new Set(Object.values(c.compose.calls).map((call) => call.cluster))];
    return { kind: "compose", links: clusters.map((cluster) => ({ cluster, role: "call" as const, weight: null })) };
  }
  return { kind: "module", links: [] };
}

function endpointsOf(cluster: Cluster, inputs: StatusInputs, earlier: Reading, failures: Map<string, EndpointFailure>, now: number): EndpointStatus[] {
  const monotonic = inputs.monotonicNow ?? performance.now();
  return cluster.endpoints.map((e) => {
    const key = pairKey(cluster.name, e.address);
    const t = triesBetween(inputs.live.tries.get(key), earlier.tries.get(key));
    const total = t.ok + t.status5xx + t.error;
    const failed = t.status5xx + t.error;
    const h = e.health;
    const checked = cluster.config.health_check !== undefined;
    const ejectedFor = h.ejectedUntil > monotonic ? Math.round(h.ejectedUntil - monotonic) : 0;
    const f = failures.get(key);
    const judged = judgeEndpoint({ tries: total, failed, ejectedForMs: ejectedFor, checked, checkPassing: h.activeHealthy });
    return {
      address: e.address,
      weight: e.weight,
      ...judged,
      health_check: checked ? (h.activeHealthy ? "passing" : "failing") : "none",
      ejected_for_ms: ejectedFor,
      ejections: h.ejections,
      tries: { total, ok: t.ok, status_5xx: t.status5xx, error: t.error, error_rate: total > 0 ? Math.round((failed / total) * 10_000) / 10_000 : null },
      last_failure: f === undefined ? null : { code: f.code, message: f.message, at: new Date(f.at).toISOString(), ago_s: Math.max(0, Math.round((now - f.at) / 1000)) },
      active: e.active,
    };
  });
}

/** The whole status document. */
export function buildStatus(inputs: StatusInputs): StatusJson {
  const { runtime, live } = inputs;
  const now = live.at;
  const readings = inputs.readings;
  // The window: from the newest reading at least WINDOW_MS old (else the oldest; before the first
  // one, the start of the process, when every counter was 0) until now.
  const earlier = readingBefore(readings, now, WINDOW_MS) ?? emptyReading(now - performance.now());
  const seconds = Math.max(0.001, (now - earlier.at) / 1000);
  // Charts: one point per interval between readings, and the interval under way — once it is long
  // enough to say something (or when it is all there is, just after the start).
  const past = readings.filter((r) => r.at < now);
  const points = past.length < 2 || now - past[past.length - 1]!.at >= LIVE_POINT_MIN_MS ? [...past, live] : past;
  const failures = new Map(inputs.failures.map((f) => [pairKey(f.cluster, f.endpoint), f]));

  const clusters = new Map<string, ClusterStatus>();
  for (const c of runtime.clusters.values()) {
    const endpoints = endpointsOf(c, inputs, earlier, failures, now);
    const available = c.available();
    const panic = available.length > 0 && c.endpoints.some((e) => !isAvailable(e.health, inputs.monotonicNow ?? performance.now())) && available.length === c.endpoints.length;
    const d = countsBetween(live.clusters.get(c.name), earlier.clusters.get(c.name));
    const breaker = c.breaker?.state ?? "none";
    const judged = judgeCluster({ counts: d, endpoints, available: available.length, breaker, panic });
    clusters.set(c.name, {
      name: c.name,
      ...judged,
      balancer: c.config.balancer.type,
      breaker,
      in_flight: live.active.get(c.name) ?? c.budget.active,
      available: available.length,
      panic,
      traffic: roundTraffic(traffic(d, seconds)),
      chart: chart(points, (r) => r.clusters.get(c.name)),
      endpoints,
    });
  }

  const routes: RouteStatus[] = runtime.routes.map((route) => {
    const { kind, links } = chainOf(route);
    const serving = servingClusters(route);
    const chain: ChainLink[] = links.map((l) => {
      const cs = clusters.get(l.cluster);
      const requests = (live.routeClusters.get(pairKey(route.name, l.cluster)) ?? 0) - (earlier.routeClusters.get(pairKey(route.name, l.cluster)) ?? 0);
      return {
        ...l,
        serving: kind === "compose" || serving.has(l.cluster),
        requests: Math.max(0, requests),
        state: cs?.state ?? "idle",
        available: cs?.available ?? 0,
        endpoints: cs?.endpoints.length ?? 0,
      };
    });
    const d = countsBetween(live.routes.get(route.name), earlier.routes.get(route.name));
    const judged = judgeRoute({ counts: d, chain, clusters });
    return {
      name: route.name,
      kind,
      ...judged,
      chain,
      requests: live.routes.get(route.name)?.requests ?? 0,
      traffic: roundTraffic(traffic(d, seconds)),
      chart: chart(points, (r) => r.routes.get(route.name)),
    };
  });

  const all = [...clusters.values()];
  const failing = {
    routes: routes.filter((r) => r.state === "failing").map((r) => r.name),
    clusters: all.filter((c) => c.state === "failing").map((c) => c.name),
    endpoints: all.flatMap((c) => c.endpoints.filter((e) => e.state === "failing").map((e) => `${c.name}/${e.address}`)),
  };
  const degraded = { routes: routes.filter((r) => r.state === "degraded").map((r) => r.name), clusters: all.filter((c) => c.state === "degraded").map((c) => c.name) };
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const state: State = failing.routes.length + failing.clusters.length + failing.endpoints.length > 0 ? "failing" : degraded.routes.length + degraded.clusters.length > 0 ? "degraded" : "ok";
  const headline = state === "failing"
    ? [failing.routes.length ? `${plural(failing.routes.length, "route")} failing` : "", failing.clusters.length ? `${plural(failing.clusters.length, "cluster")} failing` : "", failing.endpoints.length ? `${plural(failing.endpoints.length, "endpoint")} failing` : ""].filter(Boolean).join(" · ")
    : state === "degraded" ? [degraded.routes.length ? `${plural(degraded.routes.length, "route")} degraded` : "", degraded.clusters.length ? `${plural(degraded.clusters.length, "cluster")} degraded` : ""].filter(Boolean).join(" · ")
    : `no failures: ${plural(routes.filter((r) => r.state === "ok").length, "route")} ok${routes.some((r) => r.state === "idle") ? `, ${routes.filter((r) => r.state === "idle").length} without traffic` : ""}`;

  return {
    version: runtime.version,
    version_info: inputs.versionInfo ?? null,
    time: new Date(now).toISOString(),
    workers: inputs.workers,
    window_s: Math.round(seconds),
    interval_s: READING_INTERVAL_MS / 1000,
    summary: { state, headline, failing, degraded },
    routes,
    clusters: all,
    config_changes: inputs.changes.map((c) => ({ at: new Date(c.at).toISOString(), source: c.source, result: c.result, version: c.version, problem: c.problem ?? null, problems: c.problems ?? 0 })),
  };
}

/** The readings of this process (one ring per process, as the counters): started with the first status route. */
let ring: ReadingRing | undefined;

export function statusReadings(): ReadingRing {
  if (ring === undefined) {
    ring = new ReadingRing(async () => readExposition((await machineMetrics()).text, Date.now()));
    ring.start();
  }
  return ring;
}

/** The status document now: the machine's counters and failures read once, judged against the ring (`workers`: how many there are). */
export async function statusSnapshot(ref: RuntimeRef, workers: number): Promise<StatusJson> {
  const readings = statusReadings();
  const machine = await machineMetrics();
  const live = readExposition(machine.text, Date.now());
  return buildStatus({
    runtime: ref.current, versionInfo: ref.versionInfo, changes: ref.changes, live, readings: readings.all(), failures: machine.failures,
    workers,
  });
}
