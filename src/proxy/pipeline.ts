/**
 * The one place that encodes phase order (design.md). Each step says why it sits where it does.
 */
import { BODY_CANCELLED, watchBody } from "./body.ts";
import type { ProxyContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { errorResponse, errors, SwitchyardError } from "./errors.ts";
import { forward } from "./forward.ts";
import { stripHopByHop } from "./headers.ts";
import { matchRoute } from "./router.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "./websocket.ts";

export async function runPipeline(ctx: ProxyContext): Promise<Response> {
  // 1 match: everything after depends on the route (its cluster, timeouts, header rules).
  const route = matchRoute(ctx.runtime.routes, ctx);
  if (route === undefined) return fail(ctx, errors.noRoute());
  ctx.route = route;
  ctx.cluster = route.cluster;

  // 4 select: an endpoint not tried yet in this request.
  const endpoint = route.cluster.pick(ctx, ctx.triedEndpoints);
  if (endpoint === undefined) return fail(ctx, errors.noEndpoint(route.cluster.name));
  ctx.endpoint = endpoint;
  ctx.triedEndpoints.add(endpoint);
  ctx.attempt++;
  endpoint.active++; // released by the log phase, when the exchange has ended

  // WebSocket upgrades leave the HTTP path here: they have their own lifecycle (websocket.ts).
  if (route.config.websocket && isWebSocketUpgrade(ctx.request)) return proxyWebSocket(ctx, endpoint);

  // 5 forward: the deadlines span the whole exchange, so they are created before the fetch and
  // cleared only when the response body has ended.
  const deadlines = new Deadlines(route.config.timeouts.request, route.config.timeouts.idle);
  const onClientAbort = () => deadlines.fail(clientAborted());
  ctx.request.signal.addEventListener("abort", onClientAbort, { once: true });
  let upstream: Response;
  try {
    upstream = await forward(ctx, endpoint, deadlines);
  } catch (e) {
    deadlines.clear();
    return fail(ctx, SwitchyardError.from(e));
  }

  // 6 response: header rules, then the body streams through a watcher that runs phase 8 at its end.
  return respond(ctx, upstream, deadlines);
}

function clientAborted(): SwitchyardError {
  return new SwitchyardError({ code: "client_aborted", status: 499, source: "client", message: "the client went away" });
}

/**
 * Bun 1.4.5 drops Content-Length from any JS-wrapped stream body and frames it chunked
 * (oven-sh/bun#10507). A fixed-length body up to this size is therefore read whole (as nginx's
 * proxy_buffering does) and sent with its exact length; larger or unsized bodies stream.
 */
const BUFFERED_BODY_MAX = 64 * 1024;

function responseHeaders(ctx: ProxyContext, upstream: Response): Headers {
  const headers = new Headers(upstream.headers);
  stripHopByHop(headers);
  ctx.route!.responseHeaders?.apply(headers);
  headers.set("x-request-id", ctx.requestId);
  return headers;
}

function respond(ctx: ProxyContext, upstream: Response, deadlines: Deadlines): Response | Promise<Response> {
  const headers = responseHeaders(ctx, upstream);
  ctx.status = upstream.status;
  const init = { status: upstream.status, statusText: upstream.statusText, headers };
  if (upstream.body === null || ctx.method === "HEAD" || upstream.status === 204 || upstream.status === 304) {
    upstream.body?.cancel().catch(() => {});
    deadlines.clear();
    log(ctx);
    return new Response(null, init);
  }
  const length = Number(upstream.headers.get("content-length") ?? Number.NaN);
  if (length <= BUFFERED_BODY_MAX) return respondBuffered(ctx, upstream, deadlines, init);
  const body = watchBody(upstream.body, {
    onChunk(n) {
      ctx.bytesOut += n;
      deadlines.touch();
    },
    onEnd(error) {
      const reason = deadlines.signal.reason;
      deadlines.clear();
      if (error === BODY_CANCELLED) ctx.error = clientAborted();
      else if (error !== undefined) ctx.error = SwitchyardError.from(reason ?? error);
      log(ctx);
    },
  });
  return new Response(body, init);
}

/** A small fixed-length body, read whole under the same deadlines; a failure here can still be a clean 502/504. */
async function respondBuffered(ctx: ProxyContext, upstream: Response, deadlines: Deadlines, init: ResponseInit): Promise<Response> {
  let bytes: ArrayBuffer;
  try {
    bytes = await upstream.arrayBuffer();
  } catch (e) {
    const reason = deadlines.signal.reason;
    deadlines.clear();
    ctx.status = undefined;
    return fail(ctx, SwitchyardError.from(reason ?? e));
  }
  deadlines.clear();
  ctx.bytesOut = bytes.byteLength;
  log(ctx);
  return new Response(bytes, init);
}

/** 7 error: every failure becomes a JSON response with the request id, then is logged. */
export function fail(ctx: ProxyContext, error: SwitchyardError): Response {
  ctx.error = error;
  ctx.status = error.status;
  log(ctx);
  return errorResponse(error, ctx.requestId);
}

/** 8 log: exactly once per request, whatever path it took. */
export function log(ctx: ProxyContext): void {
  if (ctx.logged) return;
  ctx.logged = true;
  if (ctx.endpoint !== undefined) ctx.endpoint.active--;
  ctx.runtime.accessLog.write(ctx);
}
