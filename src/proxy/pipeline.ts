/**
 * The one place that encodes phase order (design.md). Each step says why it sits where it does.
 */
import type { Endpoint } from "../upstream/cluster.ts";
import type { ProxyContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { errors, SwitchyardError } from "./errors.ts";
import { coalesceKey, join, type Leader } from "../cache/coalesce.ts";
import { type Claim, claimIdempotencyKey } from "../cache/idempotency.ts";
import { type CacheState, cacheLookup, cacheOnResponse, invalidateAfter, purgeRequest, refreshInBackground, staleOnError } from "../cache/serve.ts";
import { metrics } from "../observe/metrics.ts";
import type { ClientSpan } from "../observe/tracing.ts";
import { forward } from "./forward.ts";
import { type TryOutcome, tryHedged, tryOnce } from "./hedge.ts";
import { clientAborted, fail, releaseConnection, releaseRetry } from "./outcome.ts";
import { mirror, wantsMirror } from "./mirror.ts";
import { readWithinRouteTime, shortest } from "./request-body.ts";
import { respond } from "./respond.ts";
import { backoffDelay, methodRetryable, type RetryPolicy, retriesError, retriesStatus, retryAfterMs } from "./retry.ts";
import { matchRoute } from "./router.ts";
import { isWebSocketUpgrade, proxyWebSocket } from "./websocket.ts";

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
  const cluster = (ctx.cluster = route.chooseCluster(ctx.headers));
  cluster.budget.active++;
  ctx.countedInCluster = true;

  // 2 request filters (cors, auth, authorize, rate limits …) in config order; WebSocket upgrades
  // pass them too. One that answers ends the request before any cache or upstream work.
  if (route.filters !== undefined) {
    for (const filter of route.filters.request) {
      const verdict = await filter.onRequest!(ctx);
      if (verdict === undefined) continue;
      return verdict instanceof Response ? respondLocal(ctx, verdict) : fail(ctx, verdict);
    }
  }

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
  if (cluster.breaker !== undefined) {
    const admission = cluster.breaker.admit();
    if (admission === "no") return failOrStale(errors.circuitOpen(cluster.name));
    ctx.breakerAdmission = admission;
  }
  if (!cluster.limits.admitRequest()) return failOrStale(errors.overloaded(cluster.name, "max_requests"));
  ctx.limitAdmitted = true;

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

  // 4 select → 5 forward, again from 4 while the retry policy allows (design.md).
  let current: Deadlines | undefined;
  // A client that leaves aborts the upstream exchange — except under an Idempotency-Key claim: the
  // upstream may already be acting, so its answer is awaited and recorded for the client's retry.
  if (claim === undefined) ctx.request.signal.addEventListener("abort", () => current?.fail(clientAborted()), { once: true });
  for (;;) {
    if (ctx.request.signal.aborted) return fail(ctx, clientAborted());
    // Waiting for a slot counts against the route's time, and ends when the client leaves.
    let slot = cluster.limits.acquireConnection(() => {
      const left = timeLeft(ctx);
      return left > 0 ? AbortSignal.any([ctx.request.signal, AbortSignal.timeout(left)]) : ctx.request.signal;
    });
    if (slot !== true) slot = await slot;
    if (!slot) return ctx.request.signal.aborted ? fail(ctx, clientAborted()) : failOrStale(errors.overloaded(cluster.name, "max_connections"));
    ctx.connectionHeld = true;
    const endpoint = select(ctx);
    if (endpoint === undefined) return failOrStale(errors.noEndpoint(cluster.name));
    const remaining = timeLeft(ctx);
    if (remaining < 0) return fail(ctx, errors.requestTimeout());
    // The deadlines span the whole exchange: created before the fetch, cleared when the body ends.
    const perTry = retries ? policy!.per_try_timeout : 0;
    const newDeadlines = () => new Deadlines(shortest(perTry, remaining), route.config.timeouts.idle);
    current = newDeadlines();
    const hedged = retries && policy!.hedge_after > 0;
    const outcome = hedged
      ? await tryHedged(ctx, policy!, endpoint, current, body, newDeadlines, (lost) => {
          if ("cancelled" in lost) recordTry(ctx, lost.endpoint, lost.startedAt, undefined, "hedge_cancelled", lost.span);
          else noteTry(ctx, lost);
          lost.span?.end();
        })
      : await tryOnce(ctx, endpoint, current, body);
    const deadlines = (current = outcome.deadlines);
    releaseRetry(ctx);
    noteTry(ctx, outcome);
    if (!outcome.ok) {
      deadlines.clear();
      const error = outcome.error;
      if (retries && retriesError(policy!, error) && (await mayRetry(ctx, policy!, undefined))) continue;
      return error.source === "upstream" ? failOrStale(error) : fail(ctx, error);
    }
    let upstream = outcome.response;
    if (retries && retriesStatus(policy!, upstream.status)) {
      const wait = upstream.status === 429 || upstream.status === 503 ? retryAfterMs(upstream.headers.get("retry-after")) : undefined;
      if ((wait === undefined || wait <= policy!.retry_after_max) && (await mayRetry(ctx, policy!, wait, upstream, deadlines))) continue;
    }
    // 3 again, with the answer: store it, merge a 304, or serve stale on a 5xx; unsafe methods invalidate.
    if (cacheState !== undefined) upstream = await cacheOnResponse(ctx, route.cache!, cacheState, upstream);
    else if (route.cache !== undefined) invalidateAfter(ctx, route.cache, upstream.status, upstream.headers);
    if (claim !== undefined) upstream = claim.record(upstream);
    if (sharing !== undefined) upstream = sharing.share(upstream);
    // A gateway-error answer after the last try is a failure a fallback may answer for.
    if (route.config.fallback !== undefined && upstream.status >= 502 && upstream.status <= 504) {
      upstream.body?.cancel().catch(() => {});
      deadlines.clear();
      return fail(ctx, new SwitchyardError({ code: "upstream_unavailable", status: upstream.status, source: "upstream", message: `the upstream answered ${upstream.status}` }));
    }
    // 6 response: the per-try limit no longer applies; the route's own deadline covers the body.
    if (perTry > 0) deadlines.restartRequestTimer(route.config.timeouts.request > 0 ? Math.max(1, timeLeft(ctx)) : 0);
    return respond(ctx, upstream, deadlines);
  }
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

/** 4 select: an endpoint not yet tried by this request (any, once all have been), counted as busy. */
function select(ctx: ProxyContext): Endpoint | undefined {
  const cluster = ctx.cluster!;
  const endpoint = cluster.pick(ctx, ctx.triedEndpoints) ?? cluster.pick(ctx);
  if (endpoint === undefined) return undefined;
  ctx.endpoint = endpoint;
  ctx.triedEndpoints.add(endpoint);
  ctx.attempt++;
  endpoint.active++; // released after a failed try, or by the log phase
  return endpoint;
}

/**
 * After a failed try: is another allowed (attempts left, the cluster's retry budget, time left)?
 * If so, lets go of the failed try (its body, its endpoint) and waits the backoff; true = retry.
 */
async function mayRetry(ctx: ProxyContext, policy: RetryPolicy, wait: number | undefined, upstream?: Response, deadlines?: Deadlines): Promise<boolean> {
  const cluster = ctx.cluster!;
  if (ctx.attempt >= policy.attempts || !cluster.budget.allows() || cluster.budget.retrying >= cluster.limits.config.max_retries) return false;
  const delay = wait ?? backoffDelay(policy, ctx.attempt);
  if (ctx.route!.config.timeouts.request > 0 && timeLeft(ctx) <= delay) return false;
  upstream?.body?.cancel().catch(() => {});
  deadlines?.clear();
  ctx.span?.endClients();
  ctx.endpoint!.active--;
  ctx.endpoint = undefined;
  releaseConnection(ctx);
  // Taken now, not when the retry is sent, so that retries waiting out their backoff count too;
  // given back when the retry's answer (or failure) is in, or by the log phase.
  cluster.budget.retrying++;
  ctx.retryHeld = true;
  metrics.retries.inc([cluster.name]);
  if (delay > 0) await Bun.sleep(delay);
  return true;
}

/** Records a settled try in the request's log entry and reports it to outlier detection. */
function noteTry(ctx: ProxyContext, o: TryOutcome): void {
  if (o.ok) {
    recordTry(ctx, o.endpoint, o.startedAt, o.response.status, undefined, o.span);
    ctx.cluster!.report(o.endpoint, { status: o.response.status });
  } else {
    recordTry(ctx, o.endpoint, o.startedAt, undefined, o.error.code, o.span);
    if (o.error.source === "upstream") ctx.cluster!.report(o.endpoint, { gatewayFailure: true });
  }
}

/** A try's client span ends here when it failed; one with an answer stays open until its body is done with. */
function recordTry(ctx: ProxyContext, endpoint: Endpoint, startedAt: number, status: number | undefined, error: string | undefined, span: ClientSpan | undefined): void {
  (ctx.tries ??= []).push({ endpoint: endpoint.address, status: status ?? null, error: error ?? null, ms: Math.round((performance.now() - startedAt) * 100) / 100 });
  if (span === undefined) return;
  span.settle(status, error);
  if (error !== undefined) span.end();
}

/** A response made here (cache, coalesced copy, replay, stale, purge): no upstream timers to keep. */
function respondLocal(ctx: ProxyContext, response: Response): Response | Promise<Response> {
  return respond(ctx, response, new Deadlines(0, 0));
}

/**
 * Milliseconds left of the route's request timeout: negative once it has passed; 0 when the
 * route has none (which callers read as "no limit").
 */
function timeLeft(ctx: ProxyContext): number {
  const timeout = ctx.route!.config.timeouts.request;
  if (timeout <= 0) return 0;
  const left = timeout - (performance.now() - ctx.startedAt);
  return left > 0 ? left : -1;
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
