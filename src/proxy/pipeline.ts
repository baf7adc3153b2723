/**
 * The one place that encodes phase order (design.md). Each step says why it sits where it does.
 */
import type { Cluster } from "../upstream/cluster.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import type { HoldRun, MatchedContext, ProxyContext, RoutedContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { flyReplayAnswer } from "../fleet/fly-replay.ts";
import { admit, exchange, select } from "./exchange.ts";
import { mirror, wantsMirror } from "./mirror.ts";
import { fail } from "./outcome.ts";
import { keepBody } from "./request-body.ts";
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
  if (!isMatched(ctx)) return fail(ctx, errors.internal()); // (it is: the route was just set)
  // The route's own body limit, before any work is done for the request (a chunked body is
  // counted as it streams, in forward.ts).
  const maxBody = route.config.max_request_body;
  if (maxBody !== undefined && Number(ctx.headers.get("content-length") ?? 0) > maxBody) return fail(ctx, errors.bodyTooLarge(maxBody));
  // Fly.io: a request that belongs to another region (a write, to the primary) goes there before any work is done here.
  if (route.config.fly_replay !== undefined) {
    const replay = flyReplayAnswer(ctx, route.config.fly_replay);
    if (replay !== undefined) return respondLocal(ctx, replay);
  }
  const timeout = route.config.timeouts.request;
  ctx.deadline = timeout > 0 ? ctx.startedAt + timeout : Number.POSITIVE_INFINITY;
  if (route.chooseCluster !== undefined) enterCluster(ctx, route.chooseCluster(ctx.headers, Math.random, ctx));

  // 2 request filters (cors, auth, authorize, rate limits …) in config order; WebSocket upgrades
  // pass them too. One that answers ends the request before any cache or upstream work.
  if (route.filters !== undefined) {
    for (const filter of route.filters.request) {
      const verdict = await filter.onRequest!(ctx);
      if (verdict === undefined) continue;
      return verdict instanceof Response ? respondLocal(ctx, verdict) : fail(ctx, verdict);
    }
  }

  // A rollout sticky by a token claim knows the caller only now.
  if (route.chooseAfterFilters && route.chooseCluster !== undefined) chooseAgain(ctx, route.chooseCluster(ctx.headers, Math.random, ctx));

  // A route that answers itself (composition, a module) does so once its filters have passed;
  // its upstream calls are sub-requests with their own clusters.
  if (route.handler !== undefined) return route.handler(ctx);
  if (!isRouted(ctx)) return fail(ctx, errors.internal()); // a forwarding route always has its cluster
  return forwardRouted(ctx);
}

/** Phases 3–6 of a forwarding route. */
async function forwardRouted(ctx: RoutedContext): Promise<Response> {
  const route = ctx.route;
  // Native gRPC calls (HTTP/2 with trailers) leave here: grpc/proxy.ts relays them with their trailers.
  const grpc = grpcDownstreamOf(ctx.request);
  if (grpc !== undefined) return proxyGrpc(ctx, grpc);
  // WebSocket upgrades leave the HTTP path here: they have their own lifecycle (websocket.ts).
  if (route.config.websocket && isWebSocketUpgrade(ctx.request)) {
    const endpoint = select(ctx);
    if (endpoint === undefined) return fail(ctx, errors.noEndpoint(ctx.cluster.name));
    return proxyWebSocket(ctx, endpoint);
  }

  // 3 holds (idempotency · cache · coalesce): a replay, a fresh hit or a coalesced copy needs no
  // upstream and no capacity; otherwise each wraps the answer below, in reverse order.
  let runs: HoldRun[] | undefined;
  for (const hold of route.holds) {
    const entry = await hold.enter(ctx);
    if (entry === undefined) continue;
    if (entry instanceof Response) return respondLocal(ctx, entry);
    if (entry instanceof SwitchyardError) return fail(ctx, entry);
    (runs ??= []).push(entry);
  }
  // A transcoded route: the JSON request becomes the RPC's message here (a bad one is the client's
  // 4xx before any capacity is taken), and that message is the body every try sends.
  if (route.transcode !== undefined) {
    const call = await route.transcode.prepare(ctx);
    if (call instanceof SwitchyardError) return fail(ctx, call);
    ctx.rpc = call;
    ctx.requestBody = call.body;
  }

  // Load shedding before any work: the breaker, then the cluster's request limit (WebSockets,
  // long-lived by nature, are not counted against either).
  const shed = admit(ctx);
  if (shed !== undefined) return failOrStandIn(ctx, runs, shed);

  // A retry or a mirror must be able to send the body again: only bodies small enough to keep
  // qualify. A filter or hold that read the body (a transform, an idempotency key) kept it.
  let body = ctx.requestBody instanceof ArrayBuffer ? ctx.requestBody : undefined;
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
  // leaves aborts the exchange — unless a hold awaits the answer (an Idempotency-Key claim: the
  // upstream may already be acting, so its answer is recorded for the client's retry).
  const sent = await exchange(ctx, body, retries, runs === undefined || !runs.some((r) => r.outlivesClient));
  if (!sent.ok) return sent.stale ? failOrStandIn(ctx, runs, sent.error) : fail(ctx, sent.error);
  const deadlines = sent.deadlines;
  let upstream = sent.response;
  // 3 again, with the answer: the holds wrap it, innermost first (store, merge a 304, stand in
  // stale for a 5xx, invalidate for an unsafe method; record; share).
  if (runs !== undefined) for (let i = runs.length - 1; i >= 0; i--) if (runs[i]!.after !== undefined) upstream = await runs[i]!.after!(upstream);
  // A gateway-error answer after the last try is a failure a fallback may answer for.
  if (route.config.fallback !== undefined && upstream.status >= 502 && upstream.status <= 504) {
    upstream.body?.cancel().catch(() => {});
    deadlines.clear();
    return fail(ctx, new SwitchyardError({ code: "upstream_unavailable", status: upstream.status, source: "upstream", message: `the upstream answered ${upstream.status}` }));
  }
  // 6 response.
  return respond(ctx, upstream, deadlines);
}

/** 7 error, or what a hold may answer instead (a stale cached copy within stale-if-error). */
function failOrStandIn(ctx: RoutedContext, runs: readonly HoldRun[] | undefined, error: SwitchyardError): Response | Promise<Response> {
  if (runs !== undefined) {
    for (const run of runs) {
      const standIn = run.standIn?.(error);
      if (standIn === undefined) continue;
      ctx.error = error; // logged beside the answer that stood in for it
      return respondLocal(ctx, standIn);
    }
  }
  return fail(ctx, error);
}

/** Moves the request to another cluster before anything was sent (its in-flight count moves with it). */
function chooseAgain(ctx: ProxyContext, cluster: Cluster): void {
  if (cluster === ctx.cluster) return;
  if (ctx.cluster !== undefined) ctx.cluster.budget.active--;
  ctx.cluster = cluster;
  cluster.budget.active++;
}

/** The cluster chosen for the request, counted in its in-flight total (the retry budget's base) until logged. */
function enterCluster(ctx: ProxyContext, cluster: Cluster): void {
  ctx.cluster = cluster;
  cluster.budget.active++;
  ctx.countedInCluster = true;
}

function isMatched(ctx: ProxyContext): ctx is MatchedContext {
  return ctx.route !== undefined;
}

/** After match and cluster choice: the later phases' type (route, cluster and deadline known). */
function isRouted(ctx: MatchedContext): ctx is RoutedContext {
  return ctx.cluster !== undefined;
}

/** A response made here (cache, coalesced copy, replay, stale, purge): no upstream timers to keep. */
function respondLocal(ctx: MatchedContext, response: Response): Response | Promise<Response> {
  return respond(ctx, response, new Deadlines(0, 0));
}

