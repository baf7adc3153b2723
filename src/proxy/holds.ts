/**
 * Phase 3's holds (design.md: Holds), compiled per route in their order — idempotency, cache,
 * coalesce — from the cache modules' own parts. Each answers now or lets the request go on under
 * a run that wraps the upstream's answer; what it keeps for the request goes on ctx.releases.
 */
import type { RouteCache } from "../cache/cache.ts";
import { coalesceKey, join } from "../cache/coalesce.ts";
import type { CoalesceConfig, IdempotencyConfig } from "../cache/hold-schema.ts";
import { claimIdempotencyKey } from "../cache/idempotency.ts";
import { claimInFleet } from "../fleet/idempotency.ts";
import { cacheLookup, cacheOnResponse, invalidateAfter, purgeRequest, refreshInBackground, staleOnError } from "../cache/serve.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import type { CompiledRoute, Hold, HoldRun, RoutedContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { forward } from "./forward.ts";
import { keepBody } from "./request-body.ts";

/** The route's holds, in the order they are entered. */
export function compileHolds(route: Pick<CompiledRoute["config"], "idempotency" | "coalesce">, cache: RouteCache | undefined): Hold[] {
  const holds: Hold[] = [];
  if (route.idempotency !== undefined) holds.push(idempotencyHold(route.idempotency));
  if (cache !== undefined) holds.push(cacheHold(cache));
  // Coalescing is for routes without a cache (a cache collapses misses itself).
  else if (route.coalesce !== undefined) holds.push(coalesceHold(route.coalesce));
  return holds;
}

/** Keeps `release` until the request ends (the log phase runs it). */
function keep(ctx: RoutedContext, release: () => void): void {
  (ctx.releases ??= []).push(release);
}

/**
 * Idempotency keys: a repeat is answered from the record, without the upstream or capacity; a
 * first request claims the key, and its answer is recorded. The body is read whole (it is part of
 * the request's fingerprint) and kept for the upstream.
 */
function idempotencyHold(config: IdempotencyConfig): Hold {
  return {
    name: "idempotency",
    async enter(ctx) {
      if (!config.methods.includes(ctx.method)) return undefined;
      const key = ctx.headers.get(config.header);
      if (key === null) return undefined;
      let body = ctx.requestBody instanceof ArrayBuffer ? ctx.requestBody : undefined;
      if (ctx.request.body !== null && body === undefined) {
        const kept = await keepBody(ctx, config.max_body);
        if (kept === undefined) return errors.tooLarge(`a request with an Idempotency-Key may carry at most ${config.max_body} bytes`);
        if (kept instanceof SwitchyardError) return kept;
        body = ctx.requestBody = kept;
      }
      // With a fleet, the record is in Redis: a retry that reaches another instance is recognised.
      const fleet = ctx.runtime.fleet;
      const claimed = fleet !== undefined ? await claimInFleet(ctx, config, key, body, fleet) : await claimIdempotencyKey(ctx, config, key, body);
      if (claimed instanceof Response) return claimed;
      keep(ctx, claimed.abandon);
      // The upstream may already be acting: its answer is awaited (and recorded) even when the client leaves.
      return { after: (upstream) => claimed.record(upstream), outlivesClient: true };
    },
  };
}

/**
 * The HTTP cache: a stored answer that may be used needs no upstream and no capacity; otherwise
 * the answer is stored (or merged, for a 304) on its way, a failure may be answered stale, and an
 * unsafe method invalidates what it changed.
 */
function cacheHold(rc: RouteCache): Hold {
  return {
    name: "cache",
    async enter(ctx) {
      if (ctx.method === "PURGE" && rc.config.purge_method) return purgeRequest(ctx, rc);
      const looked = await cacheLookup(ctx, rc).catch(cacheUnavailable);
      if (looked === undefined) return { after: (upstream) => invalidated(ctx, rc, upstream) };
      if ("answer" in looked) {
        if (looked.refresh !== undefined) refreshInBackground(ctx, rc, looked.refresh, () => sendInBackground(ctx));
        return looked.answer;
      }
      const state = looked;
      if (state.collapseRelease !== undefined) keep(ctx, () => state.collapseDeferred || state.collapseRelease!());
      const run: HoldRun = {
        after: (upstream) => cacheOnResponse(ctx, rc, state, upstream),
        standIn: () => staleOnError(ctx, rc, state),
      };
      return run;
    },
  };
}

/** Unsafe methods invalidate (RFC 9111 §4.4) before their answer is sent. */
async function invalidated(ctx: RoutedContext, rc: RouteCache, upstream: Response): Promise<Response> {
  await invalidateAfter(ctx, rc, upstream.status, upstream.headers);
  return upstream;
}

/** The cache's file failed: the request goes on uncached (logged), it never fails for it. */
function cacheUnavailable(e: unknown): undefined {
  console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "cache lookup failed; forwarding uncached", error: String(e) }));
  return undefined;
}

/** The upstream request of a background revalidation (stale-while-revalidate). */
async function sendInBackground(ctx: RoutedContext): Promise<Response> {
  const endpoint = ctx.cluster.pick(ctx);
  if (endpoint === undefined) throw errors.noEndpoint(ctx.cluster.name);
  // Its timers run to their end: a background refresh is rare (one per key at a time).
  const { request, idle } = ctx.route.config.timeouts;
  return forward(ctx, endpoint, new Deadlines(request, idle), undefined);
}

/** Coalescing: identical concurrent GETs share one upstream answer (followers get a streamed copy). */
function coalesceHold(config: CoalesceConfig): Hold {
  return {
    name: "coalesce",
    async enter(ctx) {
      const key = coalesceKey(ctx);
      if (key === undefined) return undefined;
      let joined = join(key, config);
      if ("follower" in joined) {
        const copy = await joined.follower;
        if (copy !== undefined) return copy;
        joined = join(key, config); // the leader did not share: lead or follow anew
      }
      if (!("leader" in joined)) return undefined; // another leader again: go upstream alone
      const leader = joined.leader;
      keep(ctx, leader.abandon);
      return { after: (upstream) => leader.share(upstream) };
    },
  };
}
