/**
 * The one place that encodes phase order (design.md). Each step says why it sits where it does.
 */
import type { ProxyContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { coalesceKey, join, type Leader } from "../cache/coalesce.ts";
import { type Claim, claimIdempotencyKey } from "../cache/idempotency.ts";
import { type CacheState, cacheLookup, cacheOnResponse, invalidateAfter, purgeRequest, refreshInBackground, staleOnError } from "../cache/serve.ts";
import { admit, exchange, select } from "./exchange.ts";
import { forward } from "./forward.ts";
import { fail } from "./outcome.ts";
import { mirror, wantsMirror } from "./mirror.ts";
import { readWithinRouteTime } from "./request-body.ts";
import { respond } from "./respond.ts";
import { methodRetryable } from "./retry.ts";
import { matchRoute } from "./router.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "./websocket.ts";
import { grpcDownstreamOf } from "./grpc/downstream.ts";
import { proxyGrpc } from "./grpc/proxy.ts";

export { fail, log } from "./outcome.ts";

export async function runPipeline(ctx: ProxyContext): Promise<Response> {
  // 1 match: everything after depends on the route (its cluster, timeouts, header rules).
  const route = matchRoute(ctx.runtime.routes, ctx);
  if (route === undefined) return fail(ctx, errors.noRoute());
  ctx.route = route;
  // The route's own body limit, before any work is done for the request (a chunked body is
  // counted as it streams, in forward.ts).
  const maxBody = route.config.max_request_body;
  if (maxBody !== undefined && Number(ctx.headers.get("content-length") ?? 0) > maxBody) return fail(ctx, errors.bodyTooLarge(maxBody));
  if (route.chooseCluster !== undefined) {
    ctx.cluster = route.chooseCluster(ctx.headers);
    ctx.cluster.budget.active++;
    ctx.countedInCluster = true;
  }

  // 2 request filters (cors, auth, authorize, rate limits …) in config order; WebSocket upgrades
  // pass them too. One that answers ends the request before any cache or upstream work.
  if (route.filters !== undefined) {
    for (const filter of route.filters.request) {
      const verdict = await filter.onRequest!(ctx);
      if (verdict === undefined) continue;
      return verdict instanceof Response ? respondLocal(ctx, verdict) : fail(ctx, verdict);
    }
  }

  // A route that answers itself (composition) does so once its filters have passed; its upstream
  // calls are sub-requests with their own clusters.
  if (route.handler !== undefined) return route.handler(ctx);
  const cluster = ctx.cluster!;

  // Native gRPC calls (HTTP/2 with trailers) leave here too: grpc/proxy.ts relays them with their trailers.
  const grpc = grpcDownstreamOf(ctx.request);
  if (grpc !== undefined) return proxyGrpc(ctx, grpc);

  // WebSocket upgrades leave the HTTP path here: they have their own lifecycle (websocket.ts).
  if (route.config.websocket && isWebSocketUpgrade(ctx.request)) {
    const endpoint = select(ctx);
    if (endpoint === undefined) return fail(ctx, errors.noEndpoint(cluster.name));
    return proxyWebSocket(ctx, endpoint);
  }

  // 3 cache: a stored answer that may be used needs no upstream and no capacity.
  let cacheState: CacheState | undefined;
  if (route.cache !== undefined && ctx.method === "PURGE" && route.cache.config.purge_method) {
    return respondLocal(ctx, await purgeRequest(ctx, route.cache));
  }
  if (route.cache !== undefined) {
    const looked = await cacheLookup(ctx, route.cache).catch(cacheUnavailable);
    if (looked instanceof Response) {
      const refresh = ctx.backgroundRevalidate;
      if (refresh !== undefined) refreshInBackground(ctx, route.cache, refresh, () => sendInBackground(ctx));
      return respondLocal(ctx, looked);
    }
    cacheState = looked;
  }
  // Coalescing (routes without a cache): identical concurrent GETs share one upstream answer.
  let sharing: Leader | undefined;
  const coalescing = route.config.coalesce;
  const sharedKey = coalescing !== undefined && route.cache === undefined ? coalesceKey(ctx) : undefined;
  if (sharedKey !== undefined) {
    let joined = join(sharedKey, coalescing!);
    if ("follower" in joined) {
      const copy = await joined.follower;
      if (copy !== undefined) return respondLocal(ctx, copy);
      joined = join(sharedKey, coalescing!); // the leader did not share: lead or follow anew
    }
    if ("leader" in joined) {
      sharing = joined.leader;
      ctx.coalesceAbandon = sharing.abandon;
    }
  }
  /** 7 error, or a stale cached copy when stale-if-error allows one. */
  const failOrStale = (error: SwitchyardError): Response | Promise<Response> => {
    const stale = staleOnError(ctx, route.cache, cacheState);
    if (stale === undefined) return fail(ctx, error);
    ctx.error = error; // logged beside the stale answer that stood in for it
    return respondLocal(ctx, stale);
  };

  // Idempotency keys: a repeat is answered from the record, without the upstream or capacity.
  // A filter that read the body (a transform) hands it on whole, or as a stream of its own.
  let body = ctx.requestBody instanceof ArrayBuffer ? ctx.requestBody : undefined;
  let claim: Claim | undefined;
  const idem = route.config.idempotency;
  const idemKey = idem !== undefined && idem.methods.includes(ctx.method) ? ctx.headers.get(idem.header) : null;
  if (idemKey !== null) {
    if (ctx.request.body !== null && body === undefined) {
      const kept = await keepBody(ctx, idem!.max_body);
      if (kept === undefined) return fail(ctx, errors.tooLarge(`a request with an Idempotency-Key may carry at most ${idem!.max_body} bytes`));
      if (kept instanceof SwitchyardError) return fail(ctx, kept);
      body = kept;
    }
    const claimed = await claimIdempotencyKey(ctx, idem!, idemKey, body);
    if (claimed instanceof Response) return respondLocal(ctx, claimed);
    claim = claimed;
    ctx.idempotencyAbandon = () => claim?.abandon();
  }

  // A transcoded route: the JSON request becomes the RPC's message here (a bad one is the client's
  // 4xx before any capacity is taken), and that message is the body every try sends.
  if (route.transcode !== undefined) {
    const call = await route.transcode.prepare(ctx);
    if (call instanceof SwitchyardError) return fail(ctx, call);
    ctx.rpc = call;
    body = call.body;
  }

  // Load shedding before any work: the breaker, then the cluster's request limit (WebSockets,
  // long-lived by nature, are not counted against either).
  const shed = admit(ctx);
  if (shed !== undefined) return failOrStale(shed);

  // A retry or a mirror must be able to send the body again: only bodies small enough to keep qualify.
  const policy = route.config.retry;
  let retries = policy !== undefined && policy.attempts > 1 && methodRetryable(policy, ctx.method);
  const mirrored = route.mirror !== undefined && wantsMirror(route.mirror.config, ctx.request);
  if ((retries || mirrored) && ctx.request.body !== null && body === undefined) {
    const kept = await keepBody(ctx, Math.max(retries ? policy!.buffer_body : 0, mirrored ? route.mirror!.config.max_body : 0));
    if (kept instanceof SwitchyardError) return fail(ctx, kept);
    body = kept;
  }
  // Only a kept body within buffer_body may be sent again (an unkept one streams once).
  if (retries && ctx.request.body !== null && (body === undefined || body.byteLength > policy!.buffer_body)) retries = false;
  if (mirrored) mirror(ctx, route.mirror!.cluster, route.mirror!.config, body);

  // 4 select → 5 forward, again from 4 while the retry policy allows (design.md). A client that
  // leaves aborts the exchange — except under an Idempotency-Key claim: the upstream may already
  // be acting, so its answer is awaited and recorded for the client's retry.
  const sent = await exchange(ctx, body, retries, claim === undefined);
  if (!sent.ok) return sent.stale ? failOrStale(sent.error) : fail(ctx, sent.error);
  const deadlines = sent.deadlines;
  let upstream = sent.response;
  // 3 again, with the answer: store it, merge a 304, or serve stale on a 5xx; unsafe methods invalidate.
  if (cacheState !== undefined) upstream = await cacheOnResponse(ctx, route.cache!, cacheState, upstream);
  else if (route.cache !== undefined) await invalidateAfter(ctx, route.cache, upstream.status, upstream.headers);
  if (claim !== undefined) upstream = claim.record(upstream);
  if (sharing !== undefined) upstream = sharing.share(upstream);
  // A gateway-error answer after the last try is a failure a fallback may answer for.
  if (route.config.fallback !== undefined && upstream.status >= 502 && upstream.status <= 504) {
    upstream.body?.cancel().catch(() => {});
    deadlines.clear();
    return fail(ctx, new SwitchyardError({ code: "upstream_unavailable", status: upstream.status, source: "upstream", message: `the upstream answered ${upstream.status}` }));
  }
  // 6 response.
  return respond(ctx, upstream, deadlines);
}

/** The cache's file failed: the request goes on uncached (logged), it never fails for it. */
function cacheUnavailable(e: unknown): undefined {
  console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "cache lookup failed; forwarding uncached", error: String(e) }));
  return undefined;
}

/** The upstream request of a background revalidation (stale-while-revalidate). */
async function sendInBackground(ctx: ProxyContext): Promise<Response> {
  const endpoint = ctx.cluster!.pick(ctx);
  if (endpoint === undefined) throw errors.noEndpoint(ctx.cluster!.name);
  // Its timers run to their end: a background refresh is rare (one per key at a time).
  return forward(ctx, endpoint, new Deadlines(ctx.route!.config.timeouts.request, ctx.route!.config.timeouts.idle), undefined);
}

/** A response made here (cache, coalesced copy, replay, stale, purge): no upstream timers to keep. */
function respondLocal(ctx: ProxyContext, response: Response): Response | Promise<Response> {
  return respond(ctx, response, new Deadlines(0, 0));
}

/**
 * Reads the request body whole when its declared length is within `max` (and it arrives within
 * the route's idle/request time): the bytes, an error to answer with, or undefined when it is too
 * large (or of unknown length) to keep.
 */
async function keepBody(ctx: ProxyContext, max: number): Promise<ArrayBuffer | SwitchyardError | undefined> {
  const declared = Number(ctx.request.headers.get("content-length") ?? Number.NaN);
  if (!(declared <= max)) return undefined;
  return readWithinRouteTime(ctx, () => ctx.request.arrayBuffer());
}
