/**
 * The log phase's part of rollouts and SLOs: one closure per route (built with the runtime) that
 * adds a finished request to preallocated counts — integer increments, no allocation.
 */
import { metrics } from "../observe/metrics.ts";
import type { Slo } from "../slo/schema.ts";
import { countRequest, ERRORS, REQUESTS, SLOW } from "./figures.ts";
import { CANARY, type RolloutHandle, STABLE, sloCounts } from "./registry.ts";

/** What the log phase knows of a finished request (a ProxyContext, seen from here). */
export interface FinishedRequest {
  readonly startedAt: number;
  readonly status?: number;
  readonly error?: { readonly code: string; readonly source: string };
  readonly attempt: number;
  readonly cluster?: { readonly name: string };
}

export type Measure = (ctx: FinishedRequest, now: number) => void;

/**
 * A failure of the service: a 5xx answer, or a failure of the proxy's on its behalf (timeout,
 * reset, no endpoint, open breaker — also when a fallback answered in its place). A client's own
 * errors (4xx, a body too large) are not.
 */
export const failed = (ctx: FinishedRequest): boolean => (ctx.error !== undefined ? ctx.error.source !== "client" : (ctx.status ?? 0) >= 500);

export function measureFor(route: string, rollout: RolloutHandle | undefined, slo: Slo | undefined): Measure | undefined {
  if (rollout === undefined && slo === undefined) return undefined;
  const sloTotals = slo === undefined ? undefined : sloCounts.acquire(route, slo);
  const slowAboveMs = slo?.latency?.threshold ?? 0;
  const requests = metrics.sloRequests.bind([route]);
  const errors = metrics.sloErrors.bind([route]);
  const slow = metrics.sloSlow.bind([route]);
  return function measure(ctx, now) {
    // A WebSocket session's duration is its life, not a latency; a client that left says nothing of the service.
    if (ctx.status === 101 || ctx.error?.code === "client_aborted") return;
    const bad = failed(ctx);
    const ms = now - ctx.startedAt;
    if (sloTotals !== undefined) {
      sloTotals[REQUESTS]!++;
      requests.inc();
      if (bad) {
        sloTotals[ERRORS]!++;
        errors.inc();
      }
      if (slowAboveMs > 0 && ms > slowAboveMs) {
        sloTotals[SLOW]!++;
        slow.inc();
      }
    }
    // A rollout judges its clusters: only requests that reached one (or failed on its side) count,
    // not a cache hit or a request a filter answered.
    if (rollout !== undefined && rollout.measuring && (ctx.attempt > 0 || bad)) {
      const name = ctx.cluster?.name;
      if (name === rollout.def.canary) countRequest(rollout.counts, CANARY, bad, ms, rollout.slowAboveMs);
      else if (name === rollout.def.stable) countRequest(rollout.counts, STABLE, bad, ms, rollout.slowAboveMs);
    }
  };
}
