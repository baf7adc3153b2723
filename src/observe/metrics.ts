/**
 * Every metric Switchyard exports, in one place (design.md). Labels are of bounded cardinality
 * only: route, cluster, cache and endpoint names come from the config; status and method are
 * reduced to classes; nothing per path, IP or user.
 */
import type { RequestRecord } from "./request-record.ts";
import { grpcStatusName } from "../util/grpc-status.ts";
import { Counter, Gauge, Histogram, Registry } from "./registry.ts";

export const registry = new Registry();

/** Upper bounds (seconds) of the latency histograms' buckets; the status page reads quantiles from them too. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const metrics = {
  requests: registry.add(new Counter("switchyard_requests_total", "Requests handled, by route, cluster, method class and status class.", ["route", "cluster", "method", "status_class"])),
  requestDuration: registry.add(new Histogram("switchyard_request_duration_seconds", "Time from arrival until the response body ended.", ["route"], LATENCY_BUCKETS)),
  upstreamDuration: registry.add(new Histogram("switchyard_upstream_duration_seconds", "Time from sending upstream until the response headers came back.", ["cluster"], LATENCY_BUCKETS)),
  bytesIn: registry.add(new Counter("switchyard_request_bytes_total", "Request body bytes received.", ["route"])),
  bytesOut: registry.add(new Counter("switchyard_response_bytes_total", "Response body bytes sent.", ["route"])),
  errors: registry.add(new Counter("switchyard_errors_total", "Requests that ended in an error, by error code (timeouts, resets, overload…).", ["route", "cluster", "code"])),
  retries: registry.add(new Counter("switchyard_retries_total", "Retries (and hedges) sent.", ["cluster"])),
  routeRetries: registry.add(new Counter("switchyard_route_retries_total", "Retries (and hedges) sent for a route's requests.", ["route"])),
  proxyFailures: registry.add(new Counter("switchyard_proxy_failures_total", "Requests that ended in an error on the upstream's side or the proxy's own (no answer, timeout, no endpoint, breaker open, overload — not the client's), by route and cluster; also counted by the status they were answered with in switchyard_requests_total.", ["route", "cluster"])),
  upstreamTries: registry.add(new Counter("switchyard_upstream_tries_total", "Upstream tries (retries and hedges included) by cluster, endpoint and result: ok (answered below 500), 5xx, error (no answer: refused, reset, timeout, TLS).", ["cluster", "endpoint", "result"])),
  fallbacks: registry.add(new Counter("switchyard_fallbacks_total", "Requests answered by a fallback instead of an error (static, or a stale cached copy).", ["route", "kind"])),
  ejections: registry.add(new Counter("switchyard_outlier_ejections_total", "Endpoints ejected by outlier detection.", ["cluster"])),
  breakerTrips: registry.add(new Counter("switchyard_breaker_trips_total", "Times a cluster's circuit breaker opened.", ["cluster"])),
  cache: registry.add(new Counter("switchyard_cache_responses_total", "Responses of cached routes by cache result (HIT, STALE, REVALIDATED, MISS).", ["cache", "result"])),
  cacheStoredBytes: registry.add(new Counter("switchyard_cache_stored_bytes_total", "Body bytes written to a cache.", ["cache"])),
  collapsedWaiters: registry.add(new Counter("switchyard_collapsed_waiters_total", "Requests that waited for another request's upstream answer instead of sending their own.", ["kind"])),
  protocolRequests: registry.add(new Counter("switchyard_requests_by_protocol_total", "Requests by listener and the client's HTTP version (1.1, 2, 3).", ["listener", "protocol"])),
  grpcRequests: registry.add(new Counter("switchyard_grpc_requests_total", "Native gRPC calls by route, cluster and the grpc-status the client got (OK, UNAVAILABLE, DEADLINE_EXCEEDED …).", ["route", "cluster", "grpc_status"])),
  websocketSessions: registry.add(new Counter("switchyard_websocket_sessions_total", "WebSocket sessions proxied.", ["route"])),
  authDecisions: registry.add(new Counter("switchyard_auth_decisions_total", "Auth filter outcomes by route, provider and result (accepted, rejected, denied, missing, unavailable); provider is empty when no credential was found.", ["route", "provider", "result"])),
  authBackendRequests: registry.add(new Counter("switchyard_auth_backend_requests_total", "Requests from auth providers to their services (JWKS, OIDC discovery, introspection, ext_authz), by outcome (ok, error).", ["provider", "outcome"])),
  transformSkipped: registry.add(new Counter("switchyard_transform_skipped_total", "Bodies a transform filter passed unmapped (no strict option set), by route, direction (request, response) and reason (not_json, encoded, partial, too_large, invalid_json).", ["route", "direction", "reason"])),
  wafMatches: registry.add(new Counter("switchyard_waf_matches_total", "WAF rule matches by route, rule id and mode (block: answered 403; detect: forwarded).", ["route", "rule", "mode"])),
  authorizeDecisions: registry.add(new Counter("switchyard_authorize_decisions_total", "Authorization decisions by route and result (allowed, denied).", ["route", "result"])),
  subrequests: registry.add(new Counter("switchyard_subrequests_total", "Upstream calls made for a client request (composition calls, custom modules' cluster client), by result: status class, or error code.", ["route", "call", "cluster", "result"])),
  egressRequests: registry.add(new Counter("switchyard_egress_requests_total", "Egress proxy exchanges (absolute-form HTTP and CONNECT tunnels), by listener, kind (http, connect) and status class; refused ones are 4xx.", ["listener", "kind", "status_class"])),
  egressDuration: registry.add(new Histogram("switchyard_egress_duration_seconds", "Egress exchanges and tunnels, from arrival until closed.", ["listener", "kind"], LATENCY_BUCKETS)),
  egressBytes: registry.add(new Counter("switchyard_egress_bytes_total", "Bytes through the egress proxy: to destinations (sent) and from them (received).", ["listener", "direction"])),
  egressErrors: registry.add(new Counter("switchyard_egress_errors_total", "Egress exchanges that ended in an error, by code (egress_denied, timeouts, refused…).", ["listener", "code"])),
  egressTunnels: registry.add(new Gauge("switchyard_egress_tunnels_active", "CONNECT tunnels open, by listener.", ["listener"])),
  reloads: registry.add(new Counter("switchyard_config_reloads_total", "Config reloads, by result.", ["result"])),
  traceSpansExported: registry.add(new Counter("switchyard_trace_spans_exported_total", "Spans the OTLP collector accepted.", [])),
  traceSpansFailed: registry.add(new Counter("switchyard_trace_spans_failed_total", "Spans sent but not accepted: the collector refused them, or every try failed.", [])),
  traceSpansDropped: registry.add(new Counter("switchyard_trace_spans_dropped_total", "Spans never sent: the export queue was full (queue_full), or shutdown came first (shutdown).", ["reason"])),
  pushes: registry.add(new Counter("switchyard_config_pushes_total", "Pushes to the config service (switchyard.config.v1), by RPC and result: accepted (ACK) or rejected (NACK).", ["rpc", "result"])),
  rateLimitDecisions: registry.add(new Counter("switchyard_rate_limit_decisions_total", "Rate-limit decisions by limit, where they were made (local buckets or global in Redis) and decision (allowed, limited, skipped: no key, unavailable: Redis down with on_failure deny).", ["limit", "scope", "decision"])),
  rateLimitRedisErrors: registry.add(new Counter("switchyard_rate_limit_redis_errors_total", "Redis calls of global rate limits that failed, by reason (timeout, error).", ["limit", "reason"])),
  rateLimitFallbacks: registry.add(new Counter("switchyard_rate_limit_fallbacks_total", "Requests a global rate limit decided without Redis, by its on_failure mode (local, allow, deny).", ["limit", "mode"])),
  rateLimitEvictions: registry.add(new Counter("switchyard_rate_limit_evictions_total", "Rate-limit buckets dropped before they were full because the limit's max_keys was reached.", ["limit"])),
  rolloutTransitions: registry.add(new Counter("switchyard_rollout_transitions_total", "Rollout transitions by route and event (started, restarted, advanced, extended, promoted, rolled_back, paused, resumed, aborted).", ["route", "event"])),
  sloRequests: registry.add(new Counter("switchyard_slo_requests_total", "Requests counted by the route's SLO (all but client aborts and WebSocket sessions).", ["route"])),
  sloErrors: registry.add(new Counter("switchyard_slo_errors_total", "Requests of an SLO route that failed its availability SLI: a 5xx answer or a failure of the proxy's (timeout, reset, no endpoint…).", ["route"])),
  sloSlow: registry.add(new Counter("switchyard_slo_slow_requests_total", "Requests of an SLO route that took longer than its latency threshold (until the response body ended).", ["route"])),
  flyReplays: registry.add(new Counter("switchyard_fly_replays_total", "Requests answered with fly-replay (sent to another Fly.io region), by route.", ["route"])),
  fleetRedisErrors: registry.add(new Counter("switchyard_fleet_redis_errors_total", "Redis calls of the fleet that failed, by feature (idempotency, purge, config, heartbeat, log) and reason (timeout, error, down: skipped within retry_interval).", ["feature", "reason"])),
  fleetIdempotency: registry.add(new Counter("switchyard_fleet_idempotency_total", "Idempotency-Key requests on a fleet, by outcome: claimed, replayed, in_flight (409), reused (422), not_kept (409: the answer was over max_answer), and without Redis: local, allowed, denied (on_failure).", ["outcome"])),
  fleetPurges: registry.add(new Counter("switchyard_fleet_purges_total", "Purges and invalidations sent to the fleet, by result: complete (every live instance confirmed), incomplete (some did not within ack_timeout), unpublished (Redis down: applied here, queued), published_late (a queued one sent once Redis answered again).", ["result"])),
  fleetPurgesApplied: registry.add(new Counter("switchyard_fleet_purges_applied_total", "Purges of other instances applied here, by how they came: live (as they happened) or catch_up (missed while away).", ["via"])),
  fleetPurgeLogLost: registry.add(new Counter("switchyard_fleet_purge_log_lost_total", "Times this instance could not tell which purges it missed (Redis restarted empty or failed over, the log trimmed, no local state), by action (clear, keep).", ["action"])),
  fleetCacheBypassed: registry.add(new Counter("switchyard_fleet_cache_bypassed_total", "Cache lookups answered as misses because this instance could not confirm it has every purge (purge.on_redis_failure: bypass), by cache.", ["cache"])),
  fleetConfigAnswers: registry.add(new Counter("switchyard_fleet_config_answers_total", "Fleet configs this instance answered, by answer (ack, nack).", ["answer"])),
  fleetConfigPublished: registry.add(new Counter("switchyard_fleet_config_published_total", "Configs pushed or PUT here and sent to the fleet, by result (published, conflict, unavailable).", ["result"])),
};

/** Fills one gauge's series at scrape time. */
export type GaugeCollector = (set: (labels: readonly string[], value: number) => void) => void;

/**
 * Rollout and SLO gauges, filled by the rollout controller (src/rollout/) when it runs in this
 * process: weight, state and step in every worker; the figures and burn rates where the decisions
 * are made (one process per machine), so that the sum over workers is that process's value.
 */
export const rolloutGauges: Partial<Record<"weight" | "state" | "step" | "errorRate" | "p99" | "sloObjective" | "sloBudget" | "sloBurn", GaugeCollector>> = {};
registry.add(new Gauge("switchyard_rollout_weight", "The canary's share of a rollout route's traffic, in percent.", ["route"], (set) => rolloutGauges.weight?.(set)));
registry.add(new Gauge("switchyard_rollout_state", "1 for a rollout's current state (progressing, paused, promoted, rolled_back), 0 for the others.", ["route", "state"], (set) => rolloutGauges.state?.(set)));
registry.add(new Gauge("switchyard_rollout_step", "The current step of a rollout, from 1.", ["route"], (set) => rolloutGauges.step?.(set)));
registry.add(new Gauge("switchyard_rollout_error_rate", "Error rate of each side of a rollout over the current step (side: canary or stable).", ["route", "side"], (set) => rolloutGauges.errorRate?.(set)));
registry.add(new Gauge("switchyard_rollout_p99_seconds", "99th percentile of request duration of each side of a rollout over the current step.", ["route", "side"], (set) => rolloutGauges.p99?.(set)));
registry.add(new Gauge("switchyard_slo_objective", "A route's SLO target as a ratio, by SLI (availability, latency).", ["route", "sli"], (set) => rolloutGauges.sloObjective?.(set)));
registry.add(new Gauge("switchyard_slo_error_budget_remaining", "Share of the SLO window's error budget left (1: untouched, 0: spent, below 0: overspent), by SLI.", ["route", "sli"], (set) => rolloutGauges.sloBudget?.(set)));
registry.add(new Gauge("switchyard_slo_burn_rate", "How fast the error budget burns over a window (1: exactly at the objective), by SLI and window (5m, 30m, 1h, 6h).", ["route", "sli", "window"], (set) => rolloutGauges.sloBurn?.(set)));

/** The fleet agent's live state (fleet/agent.ts keeps it current; only the process that runs the agent sets it). */
export const fleetState = { agent: false, redisUp: 0, inSync: 0, liveInstances: 0, fleetVersion: 0 };
registry.add(new Gauge("switchyard_fleet_redis_up", "1 while this instance's fleet agent reaches Redis, else 0 (absent without a fleet).", [], (set) => {
  if (fleetState.agent) set([], fleetState.redisUp);
}));
registry.add(new Gauge("switchyard_fleet_in_sync", "1 while this instance knows it has applied every fleet purge (its agent reads the purge log), else 0.", [], (set) => {
  if (fleetState.agent) set([], fleetState.inSync);
}));
registry.add(new Gauge("switchyard_fleet_instances", "Instances with a live heartbeat, as this instance last saw them.", [], (set) => {
  if (fleetState.agent) set([], fleetState.liveInstances);
}));
registry.add(new Gauge("switchyard_fleet_config_version", "Version of the fleet config in force here (0: this instance runs its file's).", [], (set) => {
  if (fleetState.agent) set([], fleetState.fleetVersion);
}));

/** Spans waiting in the trace exporters' queues (span-exporter.ts keeps it current). */
export const traceQueue = { spans: 0 };
registry.add(new Gauge("switchyard_trace_queue_spans", "Spans waiting to be exported.", [], (set) => set([], traceQueue.spans)));

const METHOD_CLASSES = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"];
const METHOD_INDEX = new Map(METHOD_CLASSES.map((m, i) => [m, i]));
const OTHER = METHOD_CLASSES.length - 1;

/** The series one kind of request (route, cluster, method class, status class) updates: resolved once, then reused. */
interface RequestSeries {
  requests: { inc(by?: number): void };
  duration: { observe(value: number): void };
  upstream: { observe(value: number): void };
  bytesIn: { inc(by?: number): void };
  bytesOut: { inc(by?: number): void };
  failures: { inc(by?: number): void };
  retries: { inc(by?: number): void };
}

/** listener → [HTTP/1.1, HTTP/2, HTTP/3] series. Bounded: listener names come from the config, versions are ours. */
const protocolSeries = new Map<string, { inc(by?: number): void }[]>();
const PROTOCOL_INDEX = { "1.1": 0, "2": 1, "3": 2 } as const;

function countProtocol(listener: string, protocol: "1.1" | "2" | "3"): void {
  let slots = protocolSeries.get(listener);
  if (slots === undefined) protocolSeries.set(listener, (slots = []));
  (slots[PROTOCOL_INDEX[protocol]] ??= metrics.protocolRequests.bind([listener, protocol])).inc();
}

/** route → cluster → [method class × 10 + status class]. Bounded: names come from the config. */
const requestSeries = new Map<string, Map<string, RequestSeries[]>>();

function seriesFor(route: string, cluster: string, method: string, status: number): RequestSeries {
  let byCluster = requestSeries.get(route);
  if (byCluster === undefined) requestSeries.set(route, (byCluster = new Map()));
  let slots = byCluster.get(cluster);
  if (slots === undefined) byCluster.set(cluster, (slots = []));
  const m = METHOD_INDEX.get(method) ?? OTHER;
  const statusClass = Math.min(9, Math.max(0, Math.floor(status / 100)));
  return (slots[m * 10 + statusClass] ??= {
    requests: metrics.requests.bind([route, cluster, METHOD_CLASSES[m]!, `${statusClass}xx`]),
    duration: metrics.requestDuration.bind([route]),
    upstream: metrics.upstreamDuration.bind([cluster]),
    bytesIn: metrics.bytesIn.bind([route]),
    bytesOut: metrics.bytesOut.bind([route]),
    failures: metrics.proxyFailures.bind([route, cluster]),
    retries: metrics.routeRetries.bind([route]),
  });
}

/** The log phase's contribution: one call per request. */
export function recordRequest(ctx: RequestRecord, now: number): void {
  const route = ctx.route?.name ?? "";
  const cluster = ctx.cluster?.name ?? "";
  const series = seriesFor(route, cluster, ctx.method, ctx.status ?? 0);
  series.requests.inc();
  countProtocol(ctx.listener.name, ctx.protocol ?? "1.1");
  series.duration.observe((now - ctx.startedAt) / 1000);
  if (ctx.upstreamStartedAt !== undefined && ctx.upstreamHeadersAt !== undefined) series.upstream.observe((ctx.upstreamHeadersAt - ctx.upstreamStartedAt) / 1000);
  if (ctx.bytesIn) series.bytesIn.inc(ctx.bytesIn);
  if (ctx.bytesOut) series.bytesOut.inc(ctx.bytesOut);
  if (ctx.error !== undefined) {
    metrics.errors.inc([route, cluster, ctx.error.code]);
    if (ctx.error.source !== "client") series.failures.inc();
  }
  if (ctx.attempt > 1) series.retries.inc(ctx.attempt - 1);
  if (ctx.fallback !== undefined) metrics.fallbacks.inc([route, ctx.fallback]);
  if (ctx.cacheStatus !== undefined && ctx.route?.cache) metrics.cache.inc([ctx.route.cache.cache.name, ctx.cacheStatus]);
  if (ctx.status === 101) metrics.websocketSessions.inc([route]);
  if (ctx.grpcStatus !== undefined) metrics.grpcRequests.inc([route, cluster, grpcStatusName(ctx.grpcStatus)]);
}
