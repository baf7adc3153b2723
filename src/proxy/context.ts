/**
 * The proxy's shared vocabulary, in one file because its types refer to each other: the
 * per-request context, the compiled route and runtime it runs on, and the interfaces of what a
 * route is compiled into — filters, holds, a handler, a transcoder. Everything that runs on a
 * request imports these types from here; this file imports only types from below it (upstream,
 * cache, observe, config, security, util), so no module circle runs through it.
 */
import type { Server } from "bun";
import type { AccessLog } from "../observe/access-log.ts";
import type { AuthIdentity, CallRecord, ListenerInfo, RequestRecord, TransformSkip } from "../observe/request-record.ts";
import type { ServerSpan, Tracer } from "../observe/tracing.ts";
import type { CacheScope, HttpCache, RouteCache } from "../cache/cache.ts";
import type { Config } from "../config/schema.ts";
import type { ClientIdentity } from "../security/client-identity.ts";
import type { Cluster, Endpoint } from "../upstream/cluster.ts";
import type { SwitchyardError } from "../util/errors.ts";
import type { CompiledHeaderRules } from "./headers.ts";
import type { MirrorConfig } from "./mirror-schema.ts";
import type { Route } from "./route-schema.ts";
import type { RequestFacts } from "./router.ts";
import type { ClusterChoice } from "./traffic.ts";
import type { Measure } from "../rollout/measure.ts";
import type { RolloutHandle } from "../rollout/registry.ts";
import type { FleetServices } from "../fleet/types.ts";

export type { AuthIdentity, CallRecord, ListenerInfo, TransformSkip };

/** What the pipeline calls on the server a request came through: Bun.serve, or the HTTP/2 engine's stand-in (server/h2/engine.ts). */
export type RequestServer = Pick<Server<unknown>, "requestIP" | "timeout" | "upgrade">;

/** Per-request state carried through the phases (design.md: one typed context, no bags). */
export interface ProxyContext extends RequestRecord {
  readonly requestId: string;
  /** Sent upstream: the caller's, or (tracing on) one naming this request's span; an upstream try sends its own client span's. */
  readonly traceparent: string;
  /** This request's server span, when tracing is on and the trace is sampled. */
  readonly span?: ServerSpan;
  /** The runtime this request started on; a reload never changes it mid-request. */
  readonly runtime: Runtime;
  readonly request: Request;
  readonly server: RequestServer;
  /** The TCP peer's address. */
  readonly peerIp: string;
  /** The peer is one of the listener's trusted_proxies: its X-Forwarded-*, X-Request-Id and X-Forwarded-Client-Cert are believed. */
  readonly trustedPeer: boolean;
  /**
   * The guard saw none of the fields the upstream request must lose (hop-by-hop, forgeable,
   * rewrite claims: headers.ts REMOVABLE_REQUEST_FIELDS), so there is nothing to delete. Unset: unknown.
   */
  readonly plainHeaders?: boolean;

  route?: CompiledRoute;
  cluster?: Cluster;
  endpoint?: Endpoint;
  readonly triedEndpoints: Set<Endpoint>;
  /** Status of the answer whose outlier report waits for its body to end (0 or unset: none). */
  deferredReport?: number;
  /** The request counts in its cluster's in-flight total (for the retry budget) until logged. */
  countedInCluster?: boolean;
  /** Counted in its cluster's max_requests limit (released by the log phase). */
  limitAdmitted?: boolean;
  /** Holds one of its cluster's max_connections slots. */
  connectionHeld?: boolean;
  /** Admitted by the cluster's breaker ("probe": one of the half-open probes); its outcome is recorded at the end. */
  breakerAdmission?: "yes" | "probe";
  /** Headers added to the upstream request (a cache revalidation's validators). */
  upstreamExtraHeaders?: Record<string, string>;
  /** What the request's holds keep until it ends (a claim, a lease, a place as leader): given back by the log phase. */
  releases?: (() => void)[];
  /** See RoutedContext.deadline; 0 until a route is matched. */
  deadline: number;
  /** A retry of this request holds a place in the cluster's retry budget. */
  retryHeld?: boolean;
  /** The verified client certificate, on an mTLS listener. */
  clientCert?: ClientIdentity;
  /** On a grpc_transcode route: the RPC the JSON request became (what every try sends). */
  rpc?: RpcCall;
  /** Query parameters left off the upstream URL (a credential an auth filter strips). */
  upstreamQueryRemove?: string[];
  /**
   * RateLimit-Policy and RateLimit values (draft-ietf-httpapi-ratelimit-headers) for the response,
   * from the route's rate_limit filters; `addedBy` is the filter that adds them (the last to merge).
   */
  rateLimit?: { policy: string; state: string; addedBy: object };
  /**
   * The request body as a filter read it (and maybe rewrote it): sent upstream instead of the
   * client's stream — whole (kept for retries too), or a stream of what was read and the rest.
   */
  requestBody?: ArrayBuffer | ReadableStream<Uint8Array>;
  /** Set-Cookie of a rollout's sticky side, chosen for a client that had none (sent on the response). */
  stickyCookie?: string;
  /** Set by the log phase; it runs exactly once. */
  logged: boolean;
}

/** Answers a request here instead of forwarding it to one cluster (composition, a module); ends with respond() or fail(). */
export type RouteHandler = (ctx: MatchedContext) => Promise<Response>;

/**
 * A request once its route is matched (pipeline.ts, phase 1): the phases after match take this (or
 * RoutedContext), so none of them asserts that a route is there.
 */
export interface MatchedContext extends ProxyContext {
  readonly route: CompiledRoute;
}

/** A matched request of a forwarding route: its cluster is chosen too (every phase from 3 on). */
export interface RoutedContext extends MatchedContext {
  cluster: Cluster;
  /** performance.now() at which the route's request timeout passes; Infinity when it has none. */
  readonly deadline: number;
}

/**
 * A hold (idempotency, cache, coalescing) is to the upstream exchange what a filter is to the
 * request: compiled per route once, in that order. Per request, `enter` answers now (a replay, a
 * fresh hit, a coalesced copy), or lets the request go on — with a run that wraps the upstream's
 * answer and may stand in for a failure. What a hold keeps for the request (a claim, a collapse
 * lease, a place as leader) it gives back through ctx.releases, which the log phase empties
 * whatever happened.
 */
export interface Hold {
  readonly name: string;
  enter(ctx: RoutedContext): HoldEntry | Promise<HoldEntry>;
}

/**
 * A Response: answered now. An error: the request fails with it (phase 7). A run: the request goes
 * upstream under the hold. Undefined: nothing to do for this request.
 */
export type HoldEntry = Response | SwitchyardError | HoldRun | undefined;

export interface HoldRun {
  /** Phase 6: wraps the upstream's answer on its way to the client (store while streaming, record, share). */
  after?(upstream: Response): Response | Promise<Response>;
  /** Phase 7: an answer that may stand in for a failure on the upstream's side (stale-if-error), if any. */
  standIn?(error: SwitchyardError): Response | undefined;
  /** The exchange goes on when the client leaves (its answer is awaited, e.g. to record it for a retry). */
  readonly outlivesClient?: boolean;
}

export interface CompiledRoute {
  readonly name: string;
  readonly config: Route;
  /** The cluster for one request (weights, override, failover); undefined on a route with a handler. */
  readonly chooseCluster: ClusterChoice | undefined;
  /** The route's own answer (compose, module), run after its request filters; undefined on a forwarding route. */
  readonly handler: RouteHandler | undefined;
  readonly cache: RouteCache | undefined;
  readonly mirror: { readonly cluster: Cluster; readonly config: MirrorConfig } | undefined;
  readonly test: (facts: RequestFacts, query: () => URLSearchParams) => boolean;
  readonly rewritePath: ((path: string) => string) | undefined;
  readonly rewriteQuery: ((query: string) => string) | undefined;
  readonly hostRewrite: string | undefined;
  readonly requestHeaders: CompiledHeaderRules | undefined;
  readonly responseHeaders: CompiledHeaderRules | undefined;
  /** The route's holds (idempotency, cache, coalesce), in that order; empty when it has none. */
  readonly holds: readonly Hold[];
  /** The route's filters by hook; undefined when it has none. */
  readonly filters: CompiledFilters | undefined;
  /** HTTP/JSON → RPC translation (grpc_transcode); undefined on plain HTTP routes. */
  readonly transcode: Transcoder | undefined;
  /** The route's rollout (its live state, kept across reloads while its definition stays); undefined without one. */
  readonly rollout: RolloutHandle | undefined;
  /** The cluster is chosen again once the filters ran (a rollout sticky by a token claim needs the caller's identity). */
  readonly chooseAfterFilters: boolean;
  /** The log phase's counts for the route's rollout and SLO; undefined without either. */
  readonly measure: Measure | undefined;
}

export interface Runtime {
  /** Increases by one with every successful (re)load. */
  readonly version: number;
  readonly config: Config;
  readonly routes: readonly CompiledRoute[];
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly caches: ReadonlyMap<string, HttpCache>;
  readonly accessLog: AccessLog;
  /** Spans for sampled requests; undefined when tracing is off (the request path checks just that). */
  readonly tracer: Tracer | undefined;
  /** What this instance shares with the others of its fleet (fleet.redis), bound at start; undefined alone. */
  readonly fleet: FleetServices | undefined;
  /** Where cache purges go (this machine, or every instance of the fleet) and whether entries may be served. */
  readonly cacheScope: CacheScope | undefined;
  /** Instances shared by the routes' filters (named providers, limiters), by key (RuntimeDeps.once). */
  readonly resources: ReadonlyMap<string, unknown>;
  /**
   * Stops the runtime's timers (health checks, outlier reviews) once a newer one replaces it, and
   * disposes its shared resources (a Redis connection…) that `successor` did not take over.
   */
  dispose(successor?: Runtime): void;
}

/** What onRequest returns: nothing (go on), a Response (answered here), or an error (rendered as JSON). */
export type FilterVerdict = Response | SwitchyardError | undefined;

export interface Filter {
  /** The filter's type, used in logs and metrics. */
  readonly name: string;
  /** Phase 2. Returning a Response or an error ends the chain; the request is answered with it. */
  onRequest?(ctx: MatchedContext): FilterVerdict | Promise<FilterVerdict>;
  /** Phase 5, on every try's upstream request headers (after the route's own header rules). */
  onUpstreamRequest?(ctx: ProxyContext, headers: Headers): void;
  /**
   * Phase 6, before the response headers are finished, on every response that is not an error:
   * upstream, cached or local (a cache stores the upstream's original, so a hit is mapped again).
   * Returns a replacement, or nothing to keep it. A replacement with a Content-Length must have
   * its body in memory: it is sent whole, with that length. A throw (e.g. the upstream body
   * failing while read) ends the request as that failure.
   */
  onResponse?(ctx: ProxyContext, response: Response): Response | undefined | Promise<Response | undefined>;
  /** Phase 6, on the headers of every response the client gets: upstream, cached, local or error. */
  onResponseHeaders?(ctx: ProxyContext, headers: Headers, status: number): void;
  /** Phase 8, once per request; must not throw. */
  onLog?(ctx: ProxyContext): void;
  /**
   * Not on the request path: for the route-test tool (runtime/explain.ts), the query parameters
   * this filter takes off the upstream URL (ctx.upstreamQueryRemove) of a request like `request`,
   * were it let through.
   */
  explainQueryRemove?(request: Pick<ProxyContext, "headers" | "query">): readonly string[];
}

/** A route's filters, split by hook at build time so a request walks only the lists it needs. */
export interface CompiledFilters {
  readonly request: readonly Filter[];
  readonly upstreamRequest: readonly Filter[];
  /** In reverse config order, like responseHeaders. */
  readonly response: readonly Filter[];
  /** In reverse config order (the last filter sees the response first, as in Envoy). */
  readonly responseHeaders: readonly Filter[];
  readonly log: readonly Filter[];
  /** The filters that may take query parameters off the upstream URL (for explain). */
  readonly queryRemovers: readonly Filter[];
}

/** One prepared call: what forward.ts sends (on every try) and how the reply is read. */
export interface RpcCall {
  /** `/package.Service/Method`. */
  readonly path: string;
  /** The request body: the encoded message in the protocol's framing. */
  readonly body: ArrayBuffer;
  /** The upstream request's headers: the client's (as forwarded) with the protocol's set; `timeoutMs` is the call's time left. */
  headers(forwarded: Headers, timeoutMs: number | undefined): Headers;
  /** The client's JSON response from the upstream's reply; throws a 502 SwitchyardError when the reply is malformed. */
  reply(ctx: RoutedContext, response: Response): Promise<Response>;
}

export interface Transcoder {
  /** The call for this request, or the client's error (404, 405, 413, 415, 400). */
  prepare(ctx: RoutedContext): Promise<RpcCall | SwitchyardError>;
}
