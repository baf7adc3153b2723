/**
 * The proxy listener's catch-all route: builds the per-request context and hands it to the
 * pipeline. Kept free of middleware on purpose: code after `next()` costs ~35% on this path.
 */
import type { ListenerInfo, ProxyContext, RequestServer } from "../src/proxy/context.ts";
import { errorResponse, errors } from "../src/util/errors.ts";
import { requestIdFrom, traceparentFrom } from "../src/proxy/headers.ts";
import { fail, runPipeline } from "../src/proxy/pipeline.ts";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";
import type { RequestGuard, Target } from "../src/security/guard.ts";
import { canonicalAuthority } from "../src/security/host.ts";
import type { FrontConnection } from "../src/server/mtls-front.ts";
import { type HealthOptions, healthRoutes } from "./health.ts";

export interface ProxyRouteOptions {
  runtime: RuntimeRef;
  listener: ListenerInfo;
  /** True once shutdown has begun: new requests are refused with 503 while in-flight ones finish. */
  draining: () => boolean;
  /** The listener's request guard (limits, normalization, trusted proxies), compiled at start. */
  guard: RequestGuard;
  /**
   * mTLS listeners: the client connection behind a request (address, verified certificate), as
   * filed by the TLS front (server/mtls-front.ts); undefined when it did not come through it.
   */
  connectionOf?: (request: Request, server: RequestServer) => FrontConnection | undefined;
  /** The HTTP version of the requests this handler serves when not 1.1 (the HTTP/2 engine's, Bun.serve's QUIC server). */
  protocol?: "2" | "3";
}

/**
 * Splits Bun's `req.url` into authority, path and query without a URL object on the hot path.
 * Bun builds it from the Host header (even for an absolute-form target, whose own authority it
 * drops), and has already resolved dot segments (also %2e%2e) and turned `\` into `/`; the rest of
 * the normalization is the guard's (src/security/path.ts). An HTTP/1.0 request without Host, or
 * one whose Host Bun could not parse, arrives as a bare path: its authority is "".
 */
export function splitTarget(url: string): Target {
  const scheme = url.indexOf("://");
  const from = scheme === -1 ? 0 : scheme + 3;
  let start = url.indexOf("/", from);
  if (start === -1) start = url.length;
  // One spelling of the host (no trailing dot): the route guarded by Host is the one reached.
  const authority = canonicalAuthority(url.slice(from, start).toLowerCase());
  const q = url.indexOf("?", start);
  const path = (q === -1 ? url.slice(start) : url.slice(start, q)) || "/";
  return { authority, path, query: q === -1 ? "" : url.slice(q + 1) };
}

export function handleProxyRequest(request: Request, server: RequestServer, options: ProxyRouteOptions): Promise<Response> | Response {
  const guard = options.guard;
  // On an mTLS listener the peer is the front's client, not the front (server/mtls-front.ts).
  const front = options.connectionOf?.(request, server);
  // Trust first: a client's own X-Request-Id and X-Forwarded-For count only from a trusted proxy.
  const peer = guard.peer(front?.clientIp ?? server.requestIP(request)?.address ?? "", request.headers);
  const requestId = peer.trusted ? requestIdFrom(request.headers) : crypto.randomUUID();
  // Our own timers govern proxied exchanges; Bun's 10 s idle timer would cut slow upstreams (the
  // log phase arms it again for the kept-alive connection).
  server.timeout(request, 0);
  const target = splitTarget(request.url);
  // Before anything reads the request: refusals, dropped header names, the normalized path.
  const verdict = guard.inspect(request, target);
  const plainHeaders = guard.plainHeaders();
  const runtime = options.runtime.current;
  // Tracing off costs one undefined check; on, the trace is continued or started and sampled here.
  const trace = runtime.tracer === undefined ? undefined : runtime.tracer.begin(request.headers);
  const ctx: ProxyContext = {
    requestId,
    traceparent: trace === undefined ? traceparentFrom(request.headers) : trace.traceparent,
    span: trace?.span,
    runtime,
    request,
    server,
    listener: options.listener,
    protocol: options.protocol,
    peerIp: peer.peerIp,
    trustedPeer: peer.trusted,
    clientIp: peer.clientIp,
    clientCert: front?.identity,
    method: request.method,
    host: target.authority,
    path: typeof verdict === "string" ? verdict : target.path,
    query: target.query,
    headers: request.headers,
    plainHeaders,
    startedAt: performance.now(),
    deadline: 0,
    attempt: 0,
    deferredReport: 0,
    triedEndpoints: new Set(),
    bytesIn: 0,
    bytesOut: 0,
    logged: false,
  };
  if (options.draining()) return fail(ctx, errors.draining());
  // The inner server of an mTLS listener listens on loopback: a local process could dial it directly.
  if (options.connectionOf !== undefined && front === undefined) return fail(ctx, errors.notThroughTls());
  if (typeof verdict !== "string") return fail(ctx, verdict);
  return runPipeline(ctx).catch((e: unknown) => {
    // The pipeline turns every expected failure into a response; this is the last guard. It still
    // logs the request, which gives back everything it held (counters, slots, claims).
    console.error(JSON.stringify({ level: "error", msg: "pipeline crashed", request_id: requestId, error: String(e) }));
    if (!ctx.logged) return fail(ctx, errors.internal());
    return errorResponse(errors.internal(), requestId);
  });
}

/** The proxy listener's fetch handler. */
export type ProxyHandler = (request: Request, server: RequestServer) => Promise<Response> | Response;

/**
 * Every request goes straight to handleProxyRequest, except the health paths when the listener
 * serves them (a Hono app). A router in front of every proxied request cost ~1.5 µs per request
 * (Context, path parsing, matching) for two fixed paths.
 */
export function proxyRoutes(options: ProxyRouteOptions, health?: HealthOptions): ProxyHandler {
  if (health === undefined) return (request, server) => handleProxyRequest(request, server, options);
  const app = healthRoutes(health);
  return (request, server) => (isHealthCheck(request) ? app.fetch(request) : handleProxyRequest(request, server, options));
}

/** GET or HEAD of /healthz or /readyz (any query); other methods on those paths are proxied. */
function isHealthCheck(request: Request): boolean {
  if (request.method !== "GET" && request.method !== "HEAD") return false;
  const url = request.url;
  // Only a URL that names one is split (once more, by handleProxyRequest's own splitter).
  if (!url.includes("/healthz") && !url.includes("/readyz")) return false;
  const path = splitTarget(url).path;
  return path === "/healthz" || path === "/readyz";
}
