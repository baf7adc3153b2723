/**
 * Sub-requests: upstream calls made on behalf of one client request (a composition's calls, a
 * custom module's cluster client). Each gets a context of its own, so that phases 4–5
 * (exchange.ts) apply the cluster's policies to it unchanged, and ends by giving back what it
 * held and being listed in the client request's log line and in metrics.
 */
import { metrics } from "../observe/metrics.ts";
import type { Cluster } from "../upstream/cluster.ts";
import type { CompiledFilters, CompiledRoute, MatchedContext, ProxyContext, RoutedContext } from "./context.ts";
import { errors, type SwitchyardError } from "../util/errors.ts";
import { admit, type Exchanged, exchange } from "./exchange.ts";
import type { CompiledHeaderRules } from "./headers.ts";
import { clientAborted, release } from "./outcome.ts";
import { methodRetryable } from "./retry.ts";
import type { RetryPolicy } from "./retry-schema.ts";
import type { Route } from "./route-schema.ts";

/** What a sub-request takes from the route of the client request it is made for. */
export interface ParentRoute {
  readonly name: string;
  readonly config: Route;
  readonly requestHeaders: CompiledHeaderRules | undefined;
  readonly filters: CompiledFilters | undefined;
}

/**
 * The route sub-requests to `cluster` run on (built once, at build time): that one cluster, the
 * parent's idle timeout, header rules and upstream-request filters (identity headers…), and the
 * given deadline and retries (default: the parent's).
 */
export function subrequestRoute(parent: ParentRoute, cluster: Cluster, own: { timeout?: number; retry?: RetryPolicy; host?: string } = {}): CompiledRoute {
  const config: Route = {
    ...parent.config,
    to: cluster.name, weighted_clusters: undefined, compose: undefined, module: undefined, override: undefined, failover: undefined,
    retry: own.retry ?? parent.config.retry,
    timeouts: { request: own.timeout ?? parent.config.timeouts.request, idle: parent.config.timeouts.idle },
    compression: undefined, cache: undefined, mirror: undefined, coalesce: undefined, idempotency: undefined, fallback: undefined, filters: undefined,
    rewrite: undefined, grpc_transcode: undefined, websocket: false,
  };
  const filters = parent.filters;
  return {
    name: parent.name,
    config,
    chooseCluster: () => cluster,
    handler: undefined,
    cache: undefined,
    holds: [],
    mirror: undefined,
    test: () => false,
    rewritePath: undefined,
    rewriteQuery: undefined,
    hostRewrite: own.host,
    requestHeaders: parent.requestHeaders,
    responseHeaders: undefined,
    filters: filters && { request: [], upstreamRequest: filters.upstreamRequest, response: [], responseHeaders: [], log: [], queryRemovers: [] },
    transcode: undefined,
    rollout: undefined,
    chooseAfterFilters: false,
    measure: undefined,
  };
}

/** A `.` or `..` segment (also percent-encoded) in a target's path: fetch would resolve it away. */
export function hasDotSegment(target: string): boolean {
  const q = target.indexOf("?");
  const path = q === -1 ? target : target.slice(0, q);
  return path.split("/").some((s) => /^(?:\.|%2e){1,2}$/i.test(s));
}

export interface SubrequestInit {
  /** Its name in logs and metrics (a composition call's name, or the module's). */
  readonly call: string;
  /** Cluster choice, timeouts, retry policy and header rules for the call. */
  readonly route: CompiledRoute;
  readonly method: string;
  /** Path and query, already encoded. */
  readonly target: string;
  readonly headers: Headers;
  /** Aborting it cancels the call (its reason, if a SwitchyardError, is the call's error). */
  readonly signal: AbortSignal;
}

/** A context for one call; counted in its cluster's in-flight total until `endSubrequest`. */
export function subrequest(parent: ProxyContext, init: SubrequestInit): RoutedContext {
  const q = init.target.indexOf("?");
  // The Request carries headers and the abort signal; a body, if any, is passed to sendSubrequest.
  const request = new Request(`http://subrequest.invalid${init.target}`, { method: init.method, headers: init.headers, signal: init.signal });
  const cluster = init.route.chooseCluster!(init.headers);
  cluster.budget.active++;
  const startedAt = performance.now();
  const timeout = init.route.config.timeouts.request;
  return {
    requestId: parent.requestId,
    traceparent: parent.traceparent,
    runtime: parent.runtime,
    request,
    server: parent.server,
    listener: parent.listener,
    clientIp: parent.clientIp,
    peerIp: parent.peerIp,
    trustedPeer: parent.trustedPeer,
    method: init.method,
    host: "",
    path: q === -1 ? init.target : init.target.slice(0, q),
    query: q === -1 ? "" : init.target.slice(q + 1),
    headers: request.headers,
    startedAt,
    route: init.route,
    cluster,
    deadline: timeout > 0 ? startedAt + timeout : Number.POSITIVE_INFINITY,
    countedInCluster: true,
    attempt: 0,
    deferredReport: 0,
    triedEndpoints: new Set(),
    bytesIn: 0,
    bytesOut: 0,
    auth: parent.auth,
    clientCert: parent.clientCert,
    logged: false,
  };
}

/** Load shedding, then select → forward with the call's retry policy (a kept body can always be sent again). */
export function sendSubrequest(child: RoutedContext, body: ArrayBuffer | undefined): Promise<Exchanged> {
  if (body !== undefined) child.bytesIn = body.byteLength;
  const shed = admit(child);
  if (shed !== undefined) return Promise.resolve({ ok: false, error: shed, stale: false });
  const policy = child.route.config.retry;
  const retries = policy !== undefined && policy.attempts > 1 && methodRetryable(policy, child.method) && (body === undefined || body.byteLength <= policy.buffer_body);
  return exchange(child, body, retries, true);
}

/** Ends a call once its answer is read (or it failed): releases it, counts it, lists it in the parent's log line. */
export function endSubrequest(parent: ProxyContext, child: RoutedContext, call: string, outcome: { status?: number; error?: SwitchyardError }): void {
  if (child.logged) return;
  child.logged = true;
  child.status = outcome.status;
  child.error = outcome.error;
  release(child);
  const cluster = child.cluster.name;
  const result = outcome.error?.code ?? `${Math.floor((outcome.status ?? 0) / 100)}xx`;
  metrics.subrequests.inc([parent.route?.name ?? "", call, cluster, result]);
  if (child.upstreamStartedAt !== undefined && child.upstreamHeadersAt !== undefined) metrics.upstreamDuration.observe([cluster], (child.upstreamHeadersAt - child.upstreamStartedAt) / 1000);
  (parent.calls ??= []).push({
    call, cluster, endpoint: child.endpoint?.address ?? null, status: outcome.status ?? null, error: outcome.error?.code ?? null,
    attempts: child.attempt, ms: Math.round((performance.now() - child.startedAt) * 100) / 100,
    tries: child.tries !== undefined && child.tries.length > 1 ? child.tries : undefined,
  });
}

/**
 * For a route that answers itself (composition, a module): a controller aborted when the client
 * leaves (client_aborted) or the route's request timeout passes (upstream_timeout), so that its
 * sub-requests stop too. `done()` detaches it once the handler has its answer.
 */
export function handlerStop(ctx: MatchedContext): { controller: AbortController; done(): void } {
  const controller = new AbortController();
  const onClientGone = () => controller.abort(clientAborted());
  ctx.request.signal.addEventListener("abort", onClientGone, { once: true });
  const timer = ctx.deadline !== Number.POSITIVE_INFINITY ? setTimeout(() => controller.abort(errors.requestTimeout()), Math.max(1, ctx.deadline - performance.now())) : undefined;
  return {
    controller,
    done() {
      clearTimeout(timer);
      ctx.request.signal.removeEventListener("abort", onClientGone);
    },
  };
}
