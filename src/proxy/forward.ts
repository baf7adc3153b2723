/**
 * Phase 5: one upstream attempt with fetch. Bodies stream both ways; the Bun pitfalls of
 * shared/bun-notes.md are handled here (no decompression, no redirects, no env proxy, Bun's own
 * coarse timer off in favour of ours).
 */
import type { Endpoint } from "../upstream/cluster.ts";
import { watchBody } from "./body.ts";
import { decompressRequest } from "./compress.ts";
import type { ProxyContext } from "./context.ts";
import type { Deadlines } from "./deadlines.ts";
import { errors, SwitchyardError } from "./errors.ts";
import { setForwarded, stripCredentials, stripHopByHop } from "./headers.ts";

/** An endpoint that answered this recently most likely has a pooled connection: skip the connect probe. */
const WARM_MS = 2_000;

/**
 * The request headers for `cluster` (the request's own by default; a mirror passes its shadow's,
 * whose trust may differ), with `traceparent` (a traced try's own).
 */
export function upstreamHeaders(ctx: ProxyContext, cluster = ctx.cluster!, traceparent = ctx.traceparent): Headers {
  const route = ctx.route!;
  const headers = new Headers(ctx.request.headers);
  stripHopByHop(headers);
  if (!cluster.config.trusted) stripCredentials(headers);
  setForwarded(headers, {
    clientIp: ctx.clientIp, proto: ctx.listener.proto, host: ctx.host, requestId: ctx.requestId, traceparent,
  });
  // The authority the request was routed by (for an absolute-form target it is not the Host header).
  const host = route.hostRewrite ?? ctx.host;
  if (host !== "") headers.set("host", host);
  route.requestHeaders?.apply(headers);
  if (ctx.upstreamExtraHeaders) for (const [name, value] of Object.entries(ctx.upstreamExtraHeaders)) headers.set(name, value);
  if (route.filters !== undefined) for (const f of route.filters.upstreamRequest) f.onUpstreamRequest!(ctx, headers);
  return headers;
}

export function upstreamUrl(ctx: ProxyContext, endpoint: Endpoint, scheme?: "ws"): string {
  const path = ctx.route!.rewritePath ? ctx.route!.rewritePath(ctx.path) : ctx.path;
  const origin = scheme === "ws" ? endpoint.origin.replace(/^http/, "ws") : endpoint.origin;
  let query = ctx.route!.rewriteQuery ? ctx.route!.rewriteQuery(ctx.query) : ctx.query;
  if (ctx.upstreamQueryRemove !== undefined && query !== "") {
    const params = new URLSearchParams(query);
    for (const name of ctx.upstreamQueryRemove) params.delete(name);
    query = params.toString();
  }
  if (query === "") return origin + path;
  // A regex rewrite may have added query parameters of its own; the client's follow them.
  return `${origin}${path}${path.includes("?") ? "&" : "?"}${query}`;
}

/**
 * fetch cannot tell when its connection is established, so for an endpoint with no recent answer
 * a plain TCP connect runs beside the request: if it does not connect within the cluster's connect
 * timeout, the attempt fails as a connect timeout. Warm endpoints (pooled sockets) skip it.
 * Returns a function that stops the watch once the response headers are in.
 */
export function guardConnect(endpoint: Endpoint, timeoutMs: number, deadlines: Deadlines): () => void {
  if (timeoutMs <= 0 || performance.now() - endpoint.lastResponseAt < WARM_MS) return noop;
  let settled = false;
  const settle = () => {
    settled = true;
    clearTimeout(timer);
  };
  const timer = setTimeout(() => {
    if (!settled) deadlines.fail(errors.connectTimeout());
  }, timeoutMs);
  Bun.connect({
    hostname: endpoint.hostname,
    port: endpoint.port,
    socket: {
      open(socket) {
        settle();
        socket.end();
      },
      data() {},
      connectError() {
        settle(); // refused: fetch reports it itself
      },
    },
  }).catch(settle);
  return settle;
}

function noop(): void {}

/** Headers for a request body this proxy decoded: no coding, and the length is no longer known. */
function withoutCoding(headers: Headers): Headers {
  headers.delete("content-encoding");
  headers.delete("content-length");
  return headers;
}

/** Sends the request to `endpoint`; resolves with the upstream's response head, body still streaming. */
export async function forward(ctx: ProxyContext, endpoint: Endpoint, deadlines: Deadlines, kept?: ArrayBuffer, traceparent = ctx.traceparent): Promise<Response> {
  const request = ctx.request;
  let body: ReadableStream<Uint8Array> | ArrayBuffer | null = kept ?? request.body;
  const declared = request.headers.get("content-length");
  const compression = ctx.route!.config.compression;
  const decoded = compression?.decompress_requests && kept === undefined && body !== null
    ? decompressRequest(request.headers.get("content-encoding"), body as ReadableStream<Uint8Array>, compression.max_decompressed)
    : undefined;
  if (kept !== undefined) {
    // A body kept for retries: sent whole, the same bytes on every try.
  } else if (decoded !== undefined) {
    // A decoded body streams (chunked), watched like every body of unknown length.
    body = watchBody(decoded, {
      onChunk(n) {
        ctx.bytesIn += n;
        deadlines.touch();
      },
      onEnd() {},
    });
  } else if (body !== null && declared === null) {
    // A chunked upload is watched: bytes counted, activity feeding the idle timeout.
    body = watchBody(body as ReadableStream<Uint8Array>, {
      onChunk(n) {
        ctx.bytesIn += n;
        deadlines.touch();
      },
      onEnd() {},
    });
  }
  // A fixed-length one goes to fetch as Bun's own stream: wrapped in JS with its Content-Length,
  // Bun never returns the upstream socket to the pool (measured: 1,098 upstream connections for
  // 16 clients in the 1 MiB upload bench). Its size is the declared length.
  else if (body !== null) {
    ctx.bytesIn = Number(declared);
    if (ctx.bytesIn > 0) deadlines.holdIdle();
  }
  // A transcoded route sends its RPC (body: the encoded message, kept) and answers with its JSON reply.
  const rpc = ctx.rpc;
  const stopGuard = guardConnect(endpoint, ctx.cluster!.config.timeouts.connect, deadlines);
  ctx.upstreamStartedAt = performance.now();
  try {
    const headers = upstreamHeaders(ctx, ctx.cluster, traceparent);
    const response = await fetch(rpc === undefined ? upstreamUrl(ctx, endpoint) : endpoint.origin + rpc.path, {
      method: rpc === undefined ? ctx.method : "POST",
      headers: rpc !== undefined ? rpc.headers(headers, deadlines.remaining()) : decoded === undefined ? headers : withoutCoding(headers),
      body,
      duplex: "half",
      redirect: "manual",
      decompress: false,
      proxy: false,
      timeout: false,
      signal: deadlines.signal,
      tls: endpoint.tls ? { serverName: endpoint.hostname } : undefined,
    } as RequestInit);
    endpoint.lastResponseAt = ctx.upstreamHeadersAt = performance.now();
    deadlines.releaseIdle();
    return rpc === undefined ? response : await rpc.reply(ctx, response);
  } catch (e) {
    // An abort carries our own reason (timeout kind or client gone); anything else is the socket's.
    throw SwitchyardError.from(deadlines.signal.aborted ? deadlines.signal.reason : e);
  } finally {
    stopGuard();
  }
}
