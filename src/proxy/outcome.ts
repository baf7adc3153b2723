/** Phases 7 and 8: how every request ends — an error response, and exactly one log line. */
import type { ProxyContext } from "./context.ts";
import type { Cluster } from "../upstream/cluster.ts";
import { recordRequest } from "../observe/metrics.ts";
import { errorBody, errorResponse, SwitchyardError } from "../util/errors.ts";
import { grpcDownstreamOf } from "./grpc/downstream.ts";
import { grpcErrorResponse, grpcStatusOfError } from "../util/grpc-status.ts";

export function clientAborted(): SwitchyardError {
  return new SwitchyardError({ code: "client_aborted", status: 499, source: "client", message: "the client went away" });
}

/** Failures on the upstream side, which a route's fallback may answer for. */
const FALLBACK_FOR = new Set(["circuit_open", "overloaded", "no_healthy_endpoint"]);

/** 7 error: every failure becomes a JSON response with the request id (or the route's fallback), then is logged. */
export function fail(ctx: ProxyContext, error: SwitchyardError): Response {
  ctx.error = error;
  // A native gRPC call gets a status it can read (trailers-only), never a JSON body or a fallback.
  if (grpcDownstreamOf(ctx.request) !== undefined) return failGrpc(ctx, error);
  const fallback = ctx.route?.config.fallback;
  if (fallback !== undefined && (error.source === "upstream" || FALLBACK_FOR.has(error.code))) {
    ctx.status = fallback.status;
    ctx.fallback = "static";
    // The log's bytes_out (and the bytes metric) count what the client is sent, fallback and error bodies too.
    ctx.bytesOut = ctx.method === "HEAD" ? 0 : Buffer.byteLength(fallback.body);
    log(ctx);
    const headers = new Headers(fallback.headers);
    headers.set("x-switchyard-fallback", "static");
    headers.set("x-request-id", ctx.requestId);
    if (ctx.route?.config.retry) headers.set("x-switchyard-attempts", String(ctx.attempt));
    responseFilters(ctx, headers, fallback.status);
    return new Response(ctx.method === "HEAD" ? null : fallback.body, { status: fallback.status, headers });
  }
  ctx.status = error.status;
  const body = errorBody(error, ctx.requestId);
  // (A client that went away is sent nothing.)
  if (error.code !== "client_aborted") ctx.bytesOut = ctx.method === "HEAD" ? 0 : Buffer.byteLength(body);
  log(ctx);
  const response = errorResponse(error, ctx.requestId, body);
  if (ctx.route?.config.retry) response.headers.set("x-switchyard-attempts", String(ctx.attempt));
  responseFilters(ctx, response.headers, error.status);
  return response;
}

function failGrpc(ctx: ProxyContext, error: SwitchyardError): Response {
  ctx.status = error.status;
  ctx.grpcStatus = grpcStatusOfError(error);
  log(ctx);
  const response = grpcErrorResponse(ctx.grpcStatus, error.message, ctx.requestId, error.headers);
  responseFilters(ctx, response.headers, error.status);
  return response;
}

/** The route's filters' last word on a response's headers (CORS headers also on errors, as Envoy). */
export function responseFilters(ctx: ProxyContext, headers: Headers, status: number): void {
  // A rollout's sticky side, set on the client's first answer (rollout/choice.ts).
  if (ctx.stickyCookie !== undefined) headers.append("set-cookie", ctx.stickyCookie);
  const filters = ctx.route?.filters;
  if (filters !== undefined) for (const f of filters.responseHeaders) f.onResponseHeaders!(ctx, headers, status);
}

/** 8 log: exactly once per request, whatever path it took; releases what the request held. */
export function log(ctx: ProxyContext): void {
  if (ctx.logged) return;
  ctx.logged = true;
  release(ctx);
  const now = performance.now();
  recordRequest(ctx, now);
  ctx.route?.measure?.(ctx, now);
  ctx.span?.finish(ctx, now);
  const filters = ctx.route?.filters;
  if (filters !== undefined) {
    for (const f of filters.log) {
      try {
        f.onLog!(ctx);
      } catch (e) {
        console.error(JSON.stringify({ level: "error", msg: "filter onLog threw", filter: f.name, request_id: ctx.requestId, error: String(e) }));
      }
    }
  }
  ctx.runtime.accessLog.write(ctx);
  // The exchange ran with Bun's idle timer off (routes/proxy.ts); the connection, kept alive for
  // the next request, gets it back, or one request would let a client hold the socket for ever.
  if (ctx.status !== 101) ctx.server.timeout(ctx.request, ctx.listener.idleSeconds);
}

/**
 * Gives back everything a request (or a sub-request) held: endpoint and cluster counts, limit
 * and retry slots, collapse/idempotency/coalescing claims; records its breaker outcome.
 */
export function release(ctx: ProxyContext): void {
  // What the holds kept (a claim, a collapse lease, a place as coalescing leader).
  if (ctx.releases !== undefined) for (const r of ctx.releases) r();
  const cluster = ctx.cluster;
  if (cluster === undefined) return; // not routed to a cluster: nothing of one is held
  reportDeferred(ctx, cluster);
  if (ctx.endpoint !== undefined) ctx.endpoint.active--;
  if (ctx.countedInCluster) cluster.budget.active--;
  if (ctx.limitAdmitted) cluster.limits.releaseRequest();
  releaseRetry(ctx, cluster);
  releaseConnection(ctx, cluster);
  if (ctx.breakerAdmission !== undefined) {
    // One outcome per request: a 5xx answer or an upstream failure counts against the cluster.
    // A request that never reached the upstream says nothing about it — unless it was a probe,
    // whose slot must not be lost: it counts as failed, and the breaker stays open.
    const probe = ctx.breakerAdmission === "probe";
    if (ctx.attempt > 0) {
      const failed = ctx.error !== undefined ? ctx.error.source === "upstream" : (ctx.status ?? 0) >= 500;
      cluster.breaker!.record(failed, probe);
    } else if (probe) cluster.breaker!.record(true, true);
  }
}

/**
 * Reports the answer whose outcome waited for its body (exchange.ts noteTry) to outlier
 * detection: a gateway failure when the upstream broke the body off, else its status. (A
 * deadline that fires mid-body is not held against the endpoint: a client that stopped reading
 * fires it too.)
 */
export function reportDeferred(ctx: ProxyContext, cluster: Cluster): void {
  const status = ctx.deferredReport;
  if (status === undefined || status === 0 || ctx.endpoint === undefined) return;
  ctx.deferredReport = 0;
  const code = ctx.error?.code;
  if (code === "upstream_reset" || code === "upstream_error") cluster.report(ctx.endpoint, { gatewayFailure: true }, ctx.error);
  else cluster.report(ctx.endpoint, { status });
}

/** Gives back the request's connection slot, if it holds one (after a failed try, or at the end). */
export function releaseConnection(ctx: ProxyContext, cluster: Cluster): void {
  if (!ctx.connectionHeld) return;
  ctx.connectionHeld = false;
  cluster.limits.releaseConnection();
}

/** Gives back the request's place in its cluster's retry budget, if it holds one. */
export function releaseRetry(ctx: ProxyContext, cluster: Cluster): void {
  if (!ctx.retryHeld) return;
  ctx.retryHeld = false;
  cluster.budget.retrying--;
}
