/**
 * The proxy listener's catch-all route: builds the per-request context and hands it to the
 * pipeline. Kept free of middleware on purpose: code after `next()` costs ~35% on this path.
 */
import type { Server } from "bun";
import { Hono } from "hono";
import type { ListenerInfo, ProxyContext } from "../src/proxy/context.ts";
import { errorResponse, errors } from "../src/proxy/errors.ts";
import { requestIdFrom, traceparentFrom } from "../src/proxy/headers.ts";
import { fail, runPipeline } from "../src/proxy/pipeline.ts";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";
import { type HealthOptions, healthRoutes } from "./health.ts";

export interface ProxyRouteOptions {
  runtime: RuntimeRef;
  listener: ListenerInfo;
  /** True once shutdown has begun: new requests are refused with 503 while in-flight ones finish. */
  draining: () => boolean;
}

/**
 * Splits Bun's `req.url` into authority, path and query without a URL object on the hot path.
 * Bun builds it from the Host header (even for an absolute-form target, whose own authority it
 * drops), and has already resolved dot segments (also %2e%2e). An HTTP/1.0 request without Host
 * arrives as a bare path: its authority is "".
 */
export function splitTarget(url: string): { authority: string; path: string; query: string } {
  const scheme = url.indexOf("://");
  const from = scheme === -1 ? 0 : scheme + 3;
  let start = url.indexOf("/", from);
  if (start === -1) start = url.length;
  const authority = url.slice(from, start);
  const q = url.indexOf("?", start);
  const path = (q === -1 ? url.slice(start) : url.slice(start, q)) || "/";
  return { authority, path, query: q === -1 ? "" : url.slice(q + 1) };
}

/** A host[:port] as RFC 3986 allows it (reg-name, IPv4, [IPv6]); anything else, e.g. two Host headers joined by a comma, is refused. */
const VALID_HOST = /^(?:[a-z0-9._~!$&'()*+;=-]+|\[[0-9a-f]*:[0-9a-f:.]*\])(?::\d{1,5})?$/;

export function handleProxyRequest(request: Request, server: Server<unknown>, options: ProxyRouteOptions): Promise<Response> | Response {
  const requestId = requestIdFrom(request.headers);
  // Our own timers govern proxied exchanges; Bun's 10 s idle timer would cut slow upstreams.
  server.timeout(request, 0);
  const { authority, path, query } = splitTarget(request.url);
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
    clientIp: server.requestIP(request)?.address ?? "",
    method: request.method,
    host: authority.toLowerCase(),
    path,
    query,
    headers: request.headers,
    startedAt: performance.now(),
    attempt: 0,
    triedEndpoints: new Set(),
    bytesIn: 0,
    bytesOut: 0,
    logged: false,
  };
  if (options.draining()) return fail(ctx, errors.draining());
  // Bun routes by the first of several Host headers; RFC 9112 §3.2 demands a 400 for them.
  const hostHeader = request.headers.get("host");
  // (A Host Bun could not make a URL of arrives as a bare path, like HTTP/1.0 without Host.)
  if ((ctx.host !== "" && !VALID_HOST.test(ctx.host)) || (hostHeader !== null && (ctx.host === "" || hostHeader.includes(",")))) {
    return fail(ctx, errors.badRequest("the request has a malformed Host header, or more than one (RFC 9112 §3.2)"));
  }
  return runPipeline(ctx).catch((e: unknown) => {
    // The pipeline turns every expected failure into a response; this is the last guard. It still
    // logs the request, which gives back everything it held (counters, slots, claims).
    console.error(JSON.stringify({ level: "error", msg: "pipeline crashed", request_id: requestId, error: String(e) }));
    if (!ctx.logged) return fail(ctx, errors.internal());
    return errorResponse(errors.internal(), requestId);
  });
}

export function proxyRoutes(options: ProxyRouteOptions, health?: HealthOptions): Hono<{ Bindings: Server<unknown> }> {
  const app = new Hono<{ Bindings: Server<unknown> }>();
  if (health) app.route("/", healthRoutes(health));
  app.all("*", (c) => handleProxyRequest(c.req.raw, c.env, options));
  return app;
}
