/** Phase 6: the upstream's response, on its way to the client, with the body watched to its end. */
import { BODY_CANCELLED, watchBody } from "./body.ts";
import type { MatchedContext, Filter } from "./context.ts";
import type { Deadlines } from "./deadlines.ts";
import { SwitchyardError } from "../util/errors.ts";
import { compressible, compressStream, compressWhole, markEncoded, negotiate } from "./compress.ts";
import type { Algorithm } from "./compress-schema.ts";
import { stripHopByHop } from "./headers.ts";
import { clientAborted, fail, log, responseFilters } from "./outcome.ts";
import { bodyInMemory } from "../util/memory-body.ts";

/**
 * Bun 1.4.5 drops Content-Length from any JS-wrapped stream body and frames it chunked
 * (oven-sh/bun#10507). A fixed-length body up to this size is therefore read whole (as nginx's
 * proxy_buffering does) and sent with its exact length; larger or unsized bodies stream.
 */
export const BUFFERED_BODY_MAX = 64 * 1024;

/** The answer's body is read whole before the client sees anything (see BUFFERED_BODY_MAX): its declared length, else undefined. */
export function bufferedLength(method: string, upstream: Response): number | undefined {
  if (upstream.body === null || method === "HEAD" || upstream.status === 204 || upstream.status === 304) return undefined;
  const length = Number(upstream.headers.get("content-length") ?? Number.NaN);
  return length <= BUFFERED_BODY_MAX ? length : undefined;
}

/** Why a body read whole failed: the exchange's own reason (a deadline), else the upstream cut it. */
export function bodyReadError(deadlines: Deadlines, e: unknown, length: number | string | null): SwitchyardError {
  return SwitchyardError.fromBody(deadlines.signal.reason, e, length === null ? "" : ` (Content-Length: ${length})`);
}

/** The upstream's headers, made the client's: changed in place (fetch's headers are mutable; a copy costs per request). */
function responseHeaders(ctx: MatchedContext, upstream: Response): Headers {
  const headers = upstream.headers;
  stripHopByHop(headers);
  ctx.route.responseHeaders?.apply(headers);
  headers.set("x-request-id", ctx.requestId);
  if (ctx.route.config.retry) headers.set("x-switchyard-attempts", String(ctx.attempt));
  responseFilters(ctx, headers, upstream.status);
  return headers;
}

/**
 * Phase 6 for every response that is not an error: the route's filters may replace it (body
 * mapping) before its headers are finished and its body is sent. `inMemory`: the body is
 * already read (a composed answer): sent whole with its length, however large.
 */
export function respond(ctx: MatchedContext, upstream: Response, deadlines: Deadlines, inMemory = false): Response | Promise<Response> {
  const filters = ctx.route.filters?.response;
  if (filters === undefined || filters.length === 0 || upstream.body === null) return deliver(ctx, upstream, deadlines, inMemory);
  return filterResponse(ctx, upstream, deadlines, filters, inMemory);
}

async function filterResponse(ctx: MatchedContext, upstream: Response, deadlines: Deadlines, filters: readonly Filter[], inMemory: boolean): Promise<Response> {
  let response = upstream;
  try {
    for (const f of filters) response = (await f.onResponse!(ctx, response)) ?? response;
  } catch (e) {
    // Reading the body failed (the upstream broke off, or a deadline fired): still a clean error.
    const error = bodyReadError(deadlines, e, upstream.headers.get("content-length"));
    deadlines.clear();
    return fail(ctx, error);
  }
  return deliver(ctx, response, deadlines, inMemory || response !== upstream);
}

/** `inMemory`: a filter's replacement, whose body is already read (sent whole when it has a length). */
function deliver(ctx: MatchedContext, upstream: Response, deadlines: Deadlines, inMemory: boolean): Response | Promise<Response> {
  const headers = responseHeaders(ctx, upstream);
  const length = Number(headers.get("content-length") ?? Number.NaN);
  ctx.status = upstream.status;
  // Compression is decided on the response's own headers, before the body is touched.
  const compression = ctx.route.config.compression;
  let algo: Algorithm | undefined;
  if (compression !== undefined && compressible(compression, upstream.status, headers)) {
    algo = ctx.method === "HEAD" ? undefined : negotiate(ctx.headers.get("accept-encoding"), compression.algorithms);
    markEncoded(headers, algo);
  }
  const init = { status: upstream.status, statusText: upstream.statusText, headers };
  if (upstream.body === null || ctx.method === "HEAD" || upstream.status === 204 || upstream.status === 304) {
    upstream.body?.cancel().catch(() => {});
    deadlines.clear();
    log(ctx);
    return new Response(null, init);
  }
  // A body already in memory (a cache hit, a replay) goes out in the same Response, its headers finished above.
  const known = algo === undefined ? bodyInMemory(upstream) : undefined;
  if (known !== undefined) {
    deadlines.clear();
    ctx.bytesOut = known.byteLength;
    log(ctx);
    return upstream;
  }
  if (length <= BUFFERED_BODY_MAX || (inMemory && !Number.isNaN(length))) return respondBuffered(ctx, upstream, deadlines, init, algo);
  const eventStream = headers.get("content-type")?.startsWith("text/event-stream") ?? false;
  const source = algo === undefined ? upstream.body : compressStream(algo, upstream.body, eventStream);
  const body = watchBody(source, {
    onChunk(n) {
      ctx.bytesOut += n;
      deadlines.touch();
    },
    onEnd(error) {
      const reason = deadlines.signal.reason;
      deadlines.clear();
      if (error === BODY_CANCELLED) ctx.error = clientAborted();
      else if (error !== undefined) ctx.error = SwitchyardError.fromBody(reason, error);
      log(ctx);
    },
  }, deadlines);
  return new Response(body, init);
}

/** A small fixed-length body, read whole under the same deadlines; a failure here can still be a clean 502/504. */
async function respondBuffered(ctx: MatchedContext, upstream: Response, deadlines: Deadlines, init: ResponseInit, algo?: Algorithm): Promise<Response> {
  let bytes: ArrayBuffer | Uint8Array;
  try {
    bytes = await upstream.arrayBuffer();
  } catch (e) {
    const error = bodyReadError(deadlines, e, upstream.headers.get("content-length"));
    deadlines.clear();
    ctx.status = undefined;
    return fail(ctx, error);
  }
  deadlines.clear();
  if (algo !== undefined) bytes = compressWhole(algo, new Uint8Array(bytes));
  ctx.bytesOut = bytes.byteLength;
  log(ctx);
  return new Response(bytes, init);
}
