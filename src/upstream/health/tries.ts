/**
 * Every upstream try's outcome, per endpoint, whatever else the cluster has configured (no health
 * check or outlier detection needed): counted for /metrics (switchyard_upstream_tries_total) and,
 * when it failed, remembered as the endpoint's last failure — which the status page shows, and
 * from which it derives an endpoint that fails real traffic. On the request path: one counter
 * increment, plus four field writes on a failure; nothing is allocated.
 */
import { metrics } from "../../observe/metrics.ts";
import type { TryOutcome } from "./outlier.ts";
import type { HealthState } from "./state.ts";

interface Increment {
  inc(by?: number): void;
}

/** An endpoint's try counters, bound once when the endpoint is built. */
export interface TryCounters {
  /** Answered with a status below 500. */
  readonly ok: Increment;
  /** Answered 5xx. */
  readonly status5xx: Increment;
  /** No answer: refused, reset, timed out, TLS failed. */
  readonly error: Increment;
}

export function bindTryCounters(cluster: string, endpoint: string): TryCounters {
  return {
    ok: metrics.upstreamTries.bind([cluster, endpoint, "ok"]),
    status5xx: metrics.upstreamTries.bind([cluster, endpoint, "5xx"]),
    error: metrics.upstreamTries.bind([cluster, endpoint, "error"]),
  };
}

/** Why a try got no answer (a SwitchyardError is one). */
export interface TryFailure {
  readonly code: string;
  readonly message: string;
}

/** Counts one try of `endpoint`; a failed one becomes its last failure (`failure`: why there was no answer). */
export function noteTry(endpoint: { readonly health: HealthState; readonly tries: TryCounters }, outcome: TryOutcome, failure?: TryFailure): void {
  const h = endpoint.health;
  if ("gatewayFailure" in outcome) {
    endpoint.tries.error.inc();
    h.lastFailureCode = failure?.code ?? "upstream_error";
    h.lastFailureMessage = failure?.message ?? "the upstream request failed";
    h.lastFailureStatus = 0;
  } else if (outcome.status >= 500) {
    endpoint.tries.status5xx.inc();
    h.lastFailureCode = "upstream_5xx";
    h.lastFailureMessage = "";
    h.lastFailureStatus = outcome.status;
  } else {
    endpoint.tries.ok.inc();
    return;
  }
  h.lastFailureAt = Date.now();
}

/** The message of an endpoint's last failure (an answer ≥ 500 is told by its status). */
export function lastFailureMessage(h: HealthState): string {
  return h.lastFailureStatus > 0 ? `the upstream answered ${h.lastFailureStatus}` : h.lastFailureMessage;
}
