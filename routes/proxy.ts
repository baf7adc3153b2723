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

export interface ProxyRouteOptions {
  runtime: RuntimeRef;
  listener: ListenerInfo;
  /** True once shutdown has begun: new requests are refused with 503 while in-flight ones finish. */
  draining: () => boolean;
}

/** Splits Bun's absolute `req.url` into path and query without a URL object on the hot path. */
export function splitTarget(url: string): { path: string; query: string } {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start === -1) return { path: "/", query: "" };
  const q = url.indexOf("?", start);
  if (q === -1) return { path: url.slice(start), query: "" };
  return { path: url.slice(start, q), query: url.slice(q + 1) };
}

export function handleProxyRequest(request: Request, server: Server<unknown>, options: ProxyRouteOptions): Promise<Response> | Response {
  const requestId = requestIdFrom(request.headers);
  // Our own timers govern proxied exchanges; Bun's 10 s idle timer would cut slow upstreams.
  server.timeout(request, 0);
  const { path, query } = splitTarget(request.url);
  const ctx: ProxyContext = {
    requestId,
    traceparent: traceparentFrom(request.headers),
    runtime: options.runtime.current,
    request,
    server,
    listener: options.listener,
    clientIp: server.requestIP(request)?.address ?? "",
    method: request.method,
    host: (request.headers.get("host") ?? "").toLowerCase(),
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
  if (ctx.host === "") return fail(ctx, errors.badRequest("the request has no Host header (RFC 9112 §3.2)"));
  return runPipeline(ctx).catch((e: unknown) => {
    // The pipeline turns every expected failure into a response; this is the last guard.
    console.error(JSON.stringify({ level: "error", msg: "pipeline crashed", request_id: requestId, error: String(e) }));
    return errorResponse(errors.internal(), requestId);
  });
}

export function proxyRoutes(options: ProxyRouteOptions): Hono<{ Bindings: Server<unknown> }> {
  const app = new Hono<{ Bindings: Server<unknown> }>();
  app.all("*", (c) => handleProxyRequest(c.req.raw, c.env, options));
  return app;
}
