/**
 * Every metric Switchyard exports, in one place (design.md). Labels are of bounded cardinality
 * only: route, cluster, cache and endpoint names come from the config; status and method are
 * reduced to classes; nothing per path, IP or user.
 */
import type { ProxyContext } from "../proxy/context.ts";
import type { Runtime } from "../runtime/build.ts";
import { liveStores } from "../filters/rate-limit/local-buckets.ts";
import { Counter, Gauge, Histogram, Registry } from "./registry.ts";

export const registry = new Registry();

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const metrics = {
  requests: registry.add(new Counter("switchyard_requests_total", "Requests handled, by route, cluster, method class and status class.", ["route", "cluster", "method", "status_class"])),
  requestDuration: registry.add(new Histogram("switchyard_request_duration_seconds", "Time from arrival until the response body ended.", ["route"], LATENCY_BUCKETS)),
  upstreamDuration: registry.add(new Histogram("switchyard_upstream_duration_seconds", "Time from sending upstream until the response headers came back.", ["cluster"], LATENCY_BUCKETS)),
  bytesIn: registry.add(new Counter("switchyard_request_bytes_total", "Request body bytes received.", ["route"])),
  bytesOut: registry.add(new Counter("switchyard_response_bytes_total", "Response body bytes sent.", ["route"])),
  errors: registry.add(new Counter("switchyard_errors_total", "Requests that ended in an error, by error code (timeouts, resets, overload…).", ["route", "cluster", "code"])),
  retries: registry.add(new Counter("switchyard_retries_total", "Retries (and hedges) sent.", ["cluster"])),
  fallbacks: registry.add(new Counter("switchyard_fallbacks_total", "Requests answered by a fallback instead of an error (static, or a stale cached copy).", ["route", "kind"])),
  ejections: registry.add(new Counter("switchyard_outlier_ejections_total", "Endpoints ejected by outlier detection.", ["cluster"])),
  breakerTrips: registry.add(new Counter("switchyard_breaker_trips_total", "Times a cluster's circuit breaker opened.", ["cluster"])),
  cache: registry.add(new Counter("switchyard_cache_responses_total", "Responses of cached routes by cache result (HIT, STALE, REVALIDATED, MISS).", ["cache", "result"])),
  cacheStoredBytes: registry.add(new Counter("switchyard_cache_stored_bytes_total", "Body bytes written to a cache.", ["cache"])),
  collapsedWaiters: registry.add(new Counter("switchyard_collapsed_waiters_total", "Requests that waited for another request's upstream answer instead of sending their own.", ["kind"])),
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
  });
}

/** The log phase's contribution: one call per request. */
export function recordRequest(ctx: ProxyContext, now: number): void {
  const route = ctx.route?.name ?? "";
  const cluster = ctx.cluster?.name ?? "";
  const series = seriesFor(route, cluster, ctx.method, ctx.status ?? 0);
  series.requests.inc();
  series.duration.observe((now - ctx.startedAt) / 1000);
  if (ctx.upstreamStartedAt !== undefined && ctx.upstreamHeadersAt !== undefined) series.upstream.observe((ctx.upstreamHeadersAt - ctx.upstreamStartedAt) / 1000);
  if (ctx.bytesIn) series.bytesIn.inc(ctx.bytesIn);
  if (ctx.bytesOut) series.bytesOut.inc(ctx.bytesOut);
  if (ctx.error !== undefined) metrics.errors.inc([route, cluster, ctx.error.code]);
  if (ctx.fallback !== undefined) metrics.fallbacks.inc([route, ctx.fallback]);
  if (ctx.cacheStatus !== undefined && ctx.route?.cache) metrics.cache.inc([ctx.route.cache.cache.name, ctx.cacheStatus]);
  if (ctx.status === 101) metrics.websocketSessions.inc([route]);
}

const BREAKER_STATE = { closed: 0, open: 1, half_open: 2 } as const;

/** Where the live-state gauges read from: the process's current runtime (set at start). */
let source: (() => Runtime) | undefined;
/** The version_info of the push that put the config in force, if one did. */
let pushedVersionInfo: () => string | undefined = () => undefined;

export function setRuntimeSource(current: () => Runtime, versionInfo?: () => string | undefined): void {
  source = current;
  if (versionInfo) pushedVersionInfo = versionInfo;
}

/** Gauges read from the live runtime at scrape time (registered once per process). */
{
  const current = () => source!();
  const live = (fill: (runtime: Runtime, set: (labels: readonly string[], value: number) => void) => void) =>
    (set: (labels: readonly string[], value: number) => void) => {
      if (source !== undefined) fill(current(), set);
    };
  registry.add(new Gauge("switchyard_config_version", "Version of the config in force (1 at start, +1 per successful reload or accepted push).", [], live((rt, set) => set([], rt.version))));
  // Info-style: one series at most, replaced by each push (never one per version ever pushed).
  registry.add(new Gauge("switchyard_config_push_info", "1, labelled with the version_info of the push that put the config in force; absent when the config came from the file.", ["version_info"], (set) => {
    const info = pushedVersionInfo();
    if (info !== undefined) set([info], 1);
  }));
  registry.add(new Gauge("switchyard_requests_active", "Requests in flight, by cluster.", ["cluster"], live((rt, set) => {
    for (const c of rt.clusters.values()) set([c.name], c.budget.active);
  })));
  registry.add(new Gauge("switchyard_upstream_connections_active", "Upstream exchanges in flight (the max_connections count), by cluster.", ["cluster"], live((rt, set) => {
    for (const c of rt.clusters.values()) set([c.name], c.limits.connections);
  })));
  registry.add(new Gauge("switchyard_endpoint_healthy", "1 when an endpoint may receive requests (healthy and not ejected), else 0.", ["cluster", "endpoint"], live((rt, set) => {
    for (const c of rt.clusters.values()) {
      const up = new Set(c.available());
      for (const e of c.endpoints) set([c.name, e.address], up.has(e) && e.health.activeHealthy && e.health.ejectedUntil <= performance.now() ? 1 : 0);
    }
  })));
  registry.add(new Gauge("switchyard_rate_limit_buckets", "Rate-limit buckets tracked in memory, by limit (with workers, the supervisor holds the local ones).", ["limit"], (set) => {
    const byLimit = new Map<string, number>();
    for (const store of liveStores()) byLimit.set(store.name, (byLimit.get(store.name) ?? 0) + store.size);
    for (const [limit, n] of byLimit) set([limit], n);
  }));
  registry.add(new Gauge("switchyard_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", ["cluster"], live((rt, set) => {
    for (const c of rt.clusters.values()) if (c.breaker) set([c.name], BREAKER_STATE[c.breaker.state]);
  })));
}
