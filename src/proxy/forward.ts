/**
 * Phase 5: one upstream attempt with fetch. Bodies stream both ways; the Bun pitfalls of
 * shared/bun-notes.md are handled here (no decompression, no redirects, no env proxy, Bun's own
 * coarse timer off in favour of ours).
 */
import type { Endpoint } from "../upstream/cluster.ts";
import { watchBody } from "./body.ts";
import { decompressRequest } from "./compress.ts";
import type { RoutedContext } from "./context.ts";
import type { Deadlines } from "./deadlines.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { setForwarded, stripCredentials, stripHopByHop } from "./headers.ts";
import { upstreamTarget } from "./router.ts";
import { XFCC, xfccValue } from "../security/client-identity.ts";

/**
 * fetch options that pass a message through as it is (shared/bun-notes.md): bytes and encoding
 * intact, redirects to the client, no proxy from the environment, Bun's coarse timer off in favour
 * of our deadlines, the body streamed.
 */
export const PASS_THROUGH = { duplex: "half", redirect: "manual", decompress: false, proxy: false, timeout: false } as const;

/** An endpoint that answered this recently most likely has a pooled connection: skip the connect probe. */
const WARM_MS = 2_000;

/**
 * The request headers for `cluster` (the request's own by default; a mirror passes its shadow's,
 * whose trust may differ), with `traceparent` (a traced try's own).
 */
export function upstreamHeaders(ctx: RoutedContext, cluster = ctx.cluster, traceparent = ctx.traceparent): Headers {
  const route = ctx.route;
  const headers = new Headers(ctx.request.headers);
  const plain = ctx.plainHeaders === true;
  if (!plain) stripHopByHop(headers);
  if (!cluster.config.trusted) stripCredentials(headers);
  // After the hop-by-hop removal: what this proxy states cannot be nominated away by the client.
  setForwarded(headers, {
    received: ctx.request.headers, peerIp: ctx.peerIp, trusted: ctx.trustedPeer,
    proto: ctx.listener.proto, host: ctx.host, requestId: ctx.requestId, traceparent, plain,
  });
  if (ctx.clientCert !== undefined && ctx.listener.forwardClientCert === "set") headers.set(XFCC, xfccValue(ctx.clientCert));
  // The authority the request was routed by (for an absolute-form target it is not the Host header).
  const host = route.hostRewrite ?? ctx.host;
  if (host !== "") headers.set("host", host);
  route.requestHeaders?.apply(headers);
  if (ctx.upstreamExtraHeaders) for (const [name, value] of Object.entries(ctx.upstreamExtraHeaders)) headers.set(name, value);
  if (route.filters !== undefined) for (const f of route.filters.upstreamRequest) f.onUpstreamRequest!(ctx, headers);
  return headers;
}

/** The upstream URL of a try; the path and query are router.ts's upstreamTarget (what explain shows too). */
export function upstreamUrl(ctx: RoutedContext, endpoint: Endpoint, scheme?: "ws"): string {
  const origin = scheme === "ws" ? endpoint.origin.replace(/^http/, "ws") : endpoint.origin;
  return upstreamTarget(origin, ctx.route, ctx.path, ctx.query, ctx.upstreamQueryRemove);
}

/**
 * fetch cannot tell when its connection is established, so for an endpoint with no recent answer
 * a plain TCP connect runs beside the request: if it does not connect within the cluster's connect
 * timeout, the attempt fails as a connect timeout. Warm endpoints (pooled sockets) skip it.
 * Returns a function that stops the watch once the response headers are in.
 */
export function guardConnect(endpoint: Pick<Endpoint, "hostname" | "port" | "lastResponseAt"> & { protocol?: Endpoint["protocol"] }, timeoutMs: number, deadlines: Deadlines): () => void {
  // (An HTTP/3 endpoint is reached over UDP: a TCP probe says nothing about it.)
  if (timeoutMs <= 0 || performance.now() - endpoint.lastResponseAt < WARM_MS || endpoint.protocol === "http3") return noop;
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

/** Bun's socket idle timer takes whole seconds, at most 255 (0 = off). */
function bunIdleSeconds(ms: number): number {
  return ms <= 0 ? 0 : Math.min(255, Math.ceil(ms / 1000));
}

/** Sends the request to `endpoint`; resolves with the upstream's response head, body still streaming. */
export async function forward(ctx: RoutedContext, endpoint: Endpoint, deadlines: Deadlines, kept?: ArrayBuffer, traceparent = ctx.traceparent): Promise<Response> {
  const request = ctx.request;
  let body: ReadableStream<Uint8Array> | ArrayBuffer | null = kept ?? ctx.requestBody ?? request.body;
  const declared = request.headers.get("content-length");
  const route = ctx.route;
  const compression = route.config.compression;
  // A body of unknown length is counted against the route's limit as it streams (a declared one was checked before).
  const maxBody = declared === null ? route.config.max_request_body : undefined;
  const tooLarge = () => deadlines.fail(errors.bodyTooLarge(maxBody!));
  const decoded = compression?.decompress_requests && kept === undefined && body !== null
    ? decompressRequest(request.headers.get("content-encoding"), maxBody === undefined ? body as ReadableStream<Uint8Array> : countedRaw(body as ReadableStream<Uint8Array>, maxBody, tooLarge), compression.max_decompressed)
    : undefined;
  // A chunked upload is watched: bytes counted (against the limit), activity feeding the idle timeout.
  const watcher = {
    onChunk(n: number) {
      ctx.bytesIn += n;
      deadlines.touch();
      if (maxBody !== undefined && decoded === undefined && ctx.bytesIn > maxBody) tooLarge();
    },
    onEnd() {
      deadlines.clientSending = false;
    },
  };
  // Bun's socket idle timer, armed while Bun's own stream uploads a fixed-length body (below).
  let uploadTimer = 0;
  if (kept !== undefined) {
    // A body kept for retries: sent whole, the same bytes on every try.
  } else if (decoded !== undefined) {
    // A decoded body streams (chunked), watched like every body of unknown length.
    body = watchBody(decoded, watcher);
    deadlines.clientSending = true;
  } else if (body !== null && declared === null) {
    body = watchBody(body as ReadableStream<Uint8Array>, watcher);
    deadlines.clientSending = true;
  }
  // A fixed-length one goes to fetch as Bun's own stream: wrapped in JS with its Content-Length,
  // Bun never returns the upstream socket to the pool (measured: 1,098 upstream connections for
  // 16 clients in the 1 MiB upload bench). Its size is the declared length. Its progress cannot be
  // seen, so our idle timer is held and Bun's socket timer watches the client instead: a client
  // that stalls mid-body for the route's idle timeout has its connection closed (which aborts the
  // upstream request) — the slow-body defence; once the answer's head is in, our timers take over.
  else if (body !== null) {
    ctx.bytesIn = Number(declared);
    if (ctx.bytesIn > 0) {
      deadlines.holdIdle();
      uploadTimer = bunIdleSeconds(route.config.timeouts.idle);
      if (uploadTimer > 0) ctx.server.timeout(request, uploadTimer);
    }
  }
  // A transcoded route sends its RPC (body: the encoded message, kept) and answers with its JSON reply.
  const rpc = ctx.rpc;
  // Waiting for this endpoint's answer takes one of its slots (limits.endpoint_in_flight), so that
  // Bun's 64 pooled sockets are reused rather than churned; a body that still streams up is not
  // counted (a slow uploader must not hold a slot others wait for).
  const gate = endpoint.answerGate !== undefined && (body === null || body instanceof ArrayBuffer) ? endpoint.answerGate : undefined;
  if (gate !== undefined && !gate.tryAcquire()) {
    const admitted = await gate.acquire(() => deadlines.signal);
    if (!admitted) throw deadlines.signal.aborted ? SwitchyardError.from(deadlines.signal.reason) : errors.overloaded(ctx.cluster.name, "max_pending");
  }
  const stopGuard = guardConnect(endpoint, ctx.cluster.config.timeouts.connect, deadlines);
  ctx.upstreamStartedAt = performance.now();
  try {
    const headers = upstreamHeaders(ctx, ctx.cluster, traceparent);
    // A kept body may have been rewritten (a transform filter): its own length is the one to send.
    if (kept !== undefined && rpc === undefined) headers.set("content-length", String(kept.byteLength));
    // endpoint.send: fetch, with the cluster's HTTP version (h2c through the pooled HTTP/2 client).
    const response = await endpoint.send(rpc === undefined ? upstreamUrl(ctx, endpoint) : endpoint.origin + rpc.path, {
      method: rpc === undefined ? ctx.method : "POST",
      headers: rpc !== undefined ? rpc.headers(headers, deadlines.remaining()) : decoded === undefined ? headers : withoutCoding(headers),
      body,
      // PASS_THROUGH field by field: a spread here cost ~0.4 µs per request.
      duplex: PASS_THROUGH.duplex, redirect: PASS_THROUGH.redirect, decompress: PASS_THROUGH.decompress,
      proxy: PASS_THROUGH.proxy, timeout: PASS_THROUGH.timeout,
      signal: deadlines.signal,
      tls: endpoint.tls,
    } as RequestInit);
    endpoint.lastResponseAt = ctx.upstreamHeadersAt = performance.now();
    deadlines.releaseIdle();
    if (response.status > 599 || response.status < 200) {
      response.body?.cancel().catch(() => {});
      throw errors.badStatus(response.status);
    }
    return rpc === undefined ? response : await rpc.reply(ctx, response);
  } catch (e) {
    // An abort carries our own reason (timeout kind or client gone); anything else is the socket's.
    throw SwitchyardError.from(deadlines.signal.aborted ? deadlines.signal.reason : e);
  } finally {
    gate?.release();
    stopGuard();
    if (uploadTimer > 0) ctx.server.timeout(request, 0);
  }
}

/** The raw bytes of a body about to be decoded, counted against the route's limit. */
function countedRaw(body: ReadableStream<Uint8Array>, max: number, tooLarge: () => void): ReadableStream<Uint8Array> {
  let size = 0;
  return watchBody(body, {
    onChunk(n) {
      size += n;
      if (size > max) tooLarge();
    },
    onEnd() {},
  });
}
