/**
 * How the status page judges a route, a cluster and an endpoint from what it knows of the last
 * minute: ok (green), degraded (amber), failing (red), idle (grey: nothing to judge by). Failing
 * needs no health check or outlier detection: an endpoint whose recent tries mostly failed is
 * failing, and so is a route whose recent requests mostly failed. Pure; every reason is a sentence
 * an operator can act on.
 */
import type { Counts } from "./status-history.ts";

export type State = "ok" | "degraded" | "failing" | "idle";

/** The window every judgement is made over. */
export const WINDOW_MS = 60_000;
/** Fewer requests (or tries) than this in the window are too few for a failing verdict by ratio. */
export const MIN_SAMPLE = 3;
/** A share of failed requests (tries) at or above this is failing… */
export const FAILING_RATIO = 0.5;
/** …and at or above this, degraded. */
export const DEGRADED_RATIO = 0.05;

/** Requests that failed: answered 5xx, or failed by the proxy (on a route with a fallback they are answered otherwise). */
export const errorCount = (d: Counts) => Math.max(d.classes[5]!, d.failures);

const percent = (ratio: number) => `${ratio >= 0.995 || ratio < 0.01 ? Math.round(ratio * 100) : (ratio * 100).toFixed(1)}%`;

function worst(states: readonly State[]): State {
  if (states.includes("failing")) return "failing";
  if (states.includes("degraded")) return "degraded";
  return states.includes("ok") ? "ok" : "idle";
}

export interface EndpointJudged {
  state: State;
  /** One word for the state, shown on the page: failing, ejected, unhealthy, errors, healthy, no traffic. */
  label: string;
  reasons: string[];
}

export function judgeEndpoint(e: { tries: number; failed: number; ejectedForMs: number; checked: boolean; checkPassing: boolean }): EndpointJudged {
  const reasons: string[] = [];
  const labels: string[] = [];
  const ratio = e.tries > 0 ? e.failed / e.tries : 0;
  const tried = `${e.failed} of ${e.tries} tr${e.tries === 1 ? "y" : "ies"} failed in the last minute`;
  if (e.tries >= MIN_SAMPLE && ratio >= FAILING_RATIO) {
    labels.push("failing");
    reasons.push(tried);
  }
  if (e.ejectedForMs > 0) {
    labels.push("ejected");
    reasons.push(`ejected by outlier detection for ${Math.ceil(e.ejectedForMs / 1000)} s more`);
  }
  if (e.checked && !e.checkPassing) {
    labels.push("unhealthy");
    reasons.push("failing its active health check");
  }
  if (labels.length > 0) return { state: "failing", label: labels[0]!, reasons };
  if (e.failed > 0 && ratio >= DEGRADED_RATIO) return { state: "degraded", label: "errors", reasons: [tried] };
  if (e.tries > 0 || e.checked) return { state: "ok", label: "healthy", reasons: e.checked ? ["passing its active health check"] : [] };
  return { state: "idle", label: "no traffic", reasons: ["no tries in the last minute, and no active health check"] };
}

function trafficVerdict(d: Counts, what: string): { state: State; reason: string } | undefined {
  if (d.requests === 0) return undefined;
  const ratio = errorCount(d) / d.requests;
  let top = "";
  let most = 0;
  for (const [code, n] of d.errors) if (n > most) [top, most] = [code, n];
  const reason = `${percent(ratio)} of ${d.requests} ${what} failed in the last minute${top ? ` (mostly ${top})` : ""}`;
  if (d.requests >= MIN_SAMPLE && ratio >= FAILING_RATIO) return { state: "failing", reason };
  if (ratio > 0 && ratio >= DEGRADED_RATIO) return { state: "degraded", reason };
  return { state: "ok", reason: "" };
}

export function judgeCluster(c: { counts: Counts; endpoints: readonly EndpointJudged[]; available: number; breaker: string; panic: boolean }): { state: State; reasons: string[] } {
  const states: State[] = [];
  const reasons: string[] = [];
  const add = (state: State, reason: string) => {
    states.push(state);
    if (reason) reasons.push(reason);
  };
  const n = c.endpoints.length;
  const failing = c.endpoints.filter((e) => e.state === "failing").length;
  const erring = c.endpoints.filter((e) => e.state === "degraded").length;
  if (n === 0) add("failing", "no endpoints");
  else if (c.available === 0) add("failing", `no endpoint available (${n === 1 ? "its endpoint is" : `all ${n} are`} unhealthy or ejected)`);
  else if (failing === n) add("failing", n === 1 ? "its only endpoint is failing" : `all ${n} endpoints failing`);
  else if (failing > 0) add("degraded", `${failing} of ${n} endpoints failing`);
  if (erring > 0) add("degraded", `${erring} of ${n} endpoint${n === 1 ? "" : "s"} with errors`);
  if (c.breaker === "open") add("failing", "circuit breaker open: requests refused at once");
  if (c.breaker === "half_open") add("degraded", "circuit breaker half-open: probing");
  if (c.panic) add("degraded", "panic mode: too few healthy endpoints, sending to all");
  const verdict = trafficVerdict(c.counts, "requests");
  if (verdict) add(verdict.state, verdict.reason);
  if (c.endpoints.some((e) => e.state === "ok")) states.push("ok");
  const state = worst(states);
  return { state, reasons: state === "idle" ? ["no requests in the last minute"] : reasons };
}

export function judgeRoute(r: {
  counts: Counts;
  chain: readonly { cluster: string; role: string; serving: boolean; state: State }[];
  clusters: ReadonlyMap<string, { state: State; reasons: string[] }>;
}): { state: State; reasons: string[] } {
  const states: State[] = [];
  const reasons: string[] = [];
  const verdict = trafficVerdict(r.counts, "requests");
  if (verdict) {
    states.push(verdict.state);
    if (verdict.reason) reasons.push(verdict.reason);
  }
  const serving = r.chain.filter((l) => l.serving);
  for (const link of serving) {
    const cluster = r.clusters.get(link.cluster);
    if (cluster === undefined || (cluster.state !== "failing" && cluster.state !== "degraded")) continue;
    states.push(cluster.state);
    reasons.push(`cluster ${link.cluster} ${cluster.state}: ${cluster.reasons[0] ?? ""}`);
  }
  const primaries = r.chain.filter((l) => l.role === "primary" || l.role === "weighted");
  const failover = serving.filter((l) => l.role === "failover");
  if (failover.length > 0) {
    states.push("degraded");
    reasons.push(`failed over: ${primaries.filter((l) => !l.serving).map((l) => l.cluster).join(", ")} unavailable, ${failover.map((l) => l.cluster).join(", ")} serving`);
  }
  const state = worst(states);
  if (state === "idle") return { state, reasons: ["no requests in the last minute"] };
  return { state, reasons };
}
