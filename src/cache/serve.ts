/**
 * Phase 3 of the pipeline: answer from the cache when RFC 9111 allows, or say how to forward
 * (plain, or as a revalidation); then, with the upstream's answer, store it, merge a 304, or fall
 * back to a stale copy on a 5xx when stale-if-error allows. x-cache tells which: HIT, STALE,
 * REVALIDATED, MISS.
 */
import { wallSeconds } from "../util/clock.ts";
import { metrics } from "../observe/metrics.ts";
import type { ProxyContext } from "../proxy/context.ts";
import { errorResponse, SwitchyardError } from "../util/errors.ts";
import { stripHopByHop } from "../proxy/headers.ts";
import { Broadcast, broadcastBody } from "./broadcast.ts";
import { type Entry, type HttpCache, type PurgeBy, type PurgeOutcome } from "./cache.ts";
import { compileCacheKey, type KeyFacts, selectingHeaders, varyNames } from "./key.ts";
import {
  CACHEABLE_METHODS, currentAge, decide, httpDate, parseCacheControl, varyMatches, invalidatedUris, isStorable, mergeNotModified, notModifiedFor, notModifiedSelects, revalidationHeaders, staleIfErrorAllows,
} from "./policy.ts";
import type { RouteCacheConfig } from "./schema.ts";
import type { CacheScope, CacheState, RouteCache } from "./cache.ts";
import { responseFromMemory } from "../util/memory-body.ts";

const LOCAL_SCOPE: CacheScope = {
  purge: async (cache, by) => ({ purged: await cache.purge(by) }),
  servable: () => true,
};

export function buildRouteCache(cache: HttpCache, config: RouteCacheConfig, scope: CacheScope = LOCAL_SCOPE): RouteCache {
  return { cache, config, key: compileCacheKey(config), purge: (by) => scope.purge(cache, by), servable: () => scope.servable(cache) };
}

function keyFacts(ctx: ProxyContext): KeyFacts {
  return { scheme: ctx.listener.proto, host: ctx.host, path: ctx.path, query: ctx.query, headers: ctx.headers };
}

/** A response built from a stored entry. */
export function fromStore(ctx: ProxyContext, entry: Entry, body: Uint8Array, xCache: string, age: number, status = entry.status): Response {
  const headers = new Headers(entry.headers);
  headers.set("age", String(Math.max(0, Math.floor(age))));
  headers.set("x-cache", xCache);
  ctx.cacheStatus = xCache;
  const empty = ctx.method === "HEAD" || status === 304 || status === 204;
  if (status === 304) for (const h of ["content-length", "content-type", "content-encoding"]) headers.delete(h);
  return empty ? new Response(null, { status, headers }) : responseFromMemory(body, { status, headers });
}

/** PURGE on a route that allows it: removes the URL's entries; 200 with the count, or 404 when none. */
export async function purgeRequest(ctx: ProxyContext, rc: RouteCache): Promise<Response> {
  const key = rc.key(keyFacts(ctx)).split("\n")[0]!;
  const { purged, fleet } = await rc.purge({ key });
  return Response.json({ purged, key, fleet }, { status: purged > 0 ? 200 : 404 });
}

const ONLY_IF_CACHED = /(^|,)\s*only-if-cached\s*(,|$)/i;

/** RFC 9111 §5.2.1.7: only-if-cached and nothing usable stored → 504. */
function notCached(ctx: ProxyContext): Response {
  const error = new SwitchyardError({ code: "not_cached", status: 504, source: "client", message: "only-if-cached and nothing usable is stored", headers: { "x-cache": "MISS" } });
  return errorResponse(error, ctx.requestId);
}

/** What the cache phase found: an answer (and, within stale-while-revalidate, the entry to refresh), or the state the forward phase carries on with. */
export type Looked = { answer: Response; refresh?: CacheState } | CacheState;

/** Either a response straight from the cache, or the state the forward phase carries on with; undefined for a method the cache does not answer. */
export async function cacheLookup(ctx: ProxyContext, rc: RouteCache): Promise<Looked | undefined> {
  if (!CACHEABLE_METHODS.has(ctx.method)) return undefined;
  const key = rc.key(keyFacts(ctx));
  const requestTime = wallSeconds();
  // A fleet instance that may have missed purges (purge.on_redis_failure: bypass): a miss, uncollapsed.
  const servable = rc.servable();
  if (servable === false || (servable !== true && !(await servable))) return { key, requestTime };
  const found = await rc.cache.lookup(key, ctx.headers);
  if (found === undefined) {
    if (ONLY_IF_CACHED.test(ctx.headers.get("cache-control") ?? "")) return { answer: notCached(ctx) };
    const state: CacheState = { key, requestTime };
    if (!rc.config.collapse.enabled || ctx.method !== "GET") return state;
    const led = await collapse(ctx, rc, state, undefined);
    return led === undefined ? state : { answer: led };
  }
  const { entry, body } = found;
  const d = decide(ctx.headers, entry, requestTime, rc.cache.config.heuristic_max / 1000);
  if (d.use === "revalidate" && ONLY_IF_CACHED.test(ctx.headers.get("cache-control") ?? "")) return { answer: notCached(ctx) };
  if (d.use === "revalidate") {
    const state: CacheState = { key, stored: found, requestTime };
    // A popular stale key: one request revalidates, the others wait for its refreshed entry.
    if (rc.config.collapse.enabled && ctx.method === "GET") {
      const refreshed = await collapse(ctx, rc, state, entry.responseTime);
      if (refreshed !== undefined) return { answer: refreshed };
    }
    ctx.upstreamExtraHeaders = revalidationHeaders(entry.headers);
    return state;
  }
  let refresh: CacheState | undefined;
  if (d.use === "stale-while-revalidate") {
    ctx.upstreamExtraHeaders = revalidationHeaders(entry.headers);
    refresh = { key, stored: found, requestTime };
  }
  const label = d.use === "fresh" ? "HIT" : "STALE";
  // A conditional request the stored response satisfies gets 304 (RFC 9110 §13.2.2).
  const status = notModifiedFor(ctx.headers, entry.headers, entry.status) ? 304 : entry.status;
  return { answer: fromStore(ctx, entry, body, label, d.age, status), refresh };
}

/**
 * Collapsed forwarding for a miss (`staleSince` undefined) or a revalidation (the stale entry's
 * response time): either this request leads — undefined, it goes upstream and releases the key
 * once the answer is stored — or it waits for the leader and is answered from what it stored.
 * An answer the leader got (or validated) after this request arrived serves it even when it may
 * not be reused later (max-age=0): it is as current as a fetch of its own (as nginx's
 * proxy_cache_lock and Varnish do). Undefined when waiting gave nothing usable: the request then
 * goes upstream itself.
 */
async function collapse(ctx: ProxyContext, rc: RouteCache, state: CacheState, staleSince: number | undefined): Promise<Response | undefined> {
  const { key, requestTime: arrivedAt } = state;
  const leadership = await rc.cache.collapser.acquire(key, rc.config.collapse.lease / 1000);
  if (leadership.lead) {
    state.collapseRelease = leadership.release;
    return undefined;
  }
  metrics.collapsedWaiters.inc(["collapse"]);
  // A follower of a miss in the leader's process reads its answer as it arrives, if its Vary allows…
  if (staleSince === undefined && !leadership.remote) {
    const shared = await rc.cache.collapser.sharedAnswer(key, rc.config.collapse.wait);
    if (shared !== undefined && varyMatches(shared.headers.get("vary"), shared.requestHeaders, ctx.headers)) {
      ctx.cacheStatus = "HIT";
      return shared.response({ "x-cache": "HIT", age: "0" });
    }
  }
  // …otherwise it waits for the answer to be stored (or the entry refreshed), then serves it.
  const updated = async () => {
    const found = await rc.cache.lookup(key, ctx.headers);
    return found !== undefined && (staleSince === undefined || found.entry.responseTime > staleSince);
  };
  try {
    await rc.cache.collapser.wait(key, rc.config.collapse.wait, updated, leadership.remote);
  } finally {
    leadership.release(); // whatever happened, the key is not left waiting in this process
  }
  const led = await rc.cache.lookup(key, ctx.headers);
  if (led === undefined) return undefined;
  const d = decide(ctx.headers, led.entry, wallSeconds(), rc.cache.config.heuristic_max / 1000);
  if (d.use === "revalidate" && led.entry.responseTime < arrivedAt) return undefined;
  return fromStore(ctx, led.entry, led.body, "HIT", d.age, notModifiedFor(ctx.headers, led.entry.headers, led.entry.status) ? 304 : led.entry.status);
}

/**
 * With the upstream's answer: merge a 304 into the stored entry, fall back to a stale copy on a
 * 5xx, or store what may be stored while it streams to the client. Returns what goes to the client.
 */
export async function cacheOnResponse(ctx: ProxyContext, rc: RouteCache, state: CacheState, upstream: Response): Promise<Response> {
  const responseTime = wallSeconds();
  const stored = state.stored;
  // A 304 about another representation (the client's own validator) is the client's answer, not a refresh.
  if (stored !== undefined && upstream.status === 304 && notModifiedSelects(stored.entry.headers, upstream.headers)) {
    upstream.body?.cancel().catch(() => {});
    // §3.1/§3.2: the 304's hop-by-hop fields (and those its Connection nominates) are not stored.
    const fields = new Headers(upstream.headers);
    stripHopByHop(fields);
    const merged = mergeNotModified(stored.entry.headers, fields);
    // A 304 that is itself private or no-store refreshes nothing for others.
    const cc = parseCacheControl(upstream.headers.get("cache-control"));
    const shared = !cc.has("no-store") && !cc.has("private");
    if (shared) await rc.cache.refresh(stored.entry, merged, state.requestTime, responseTime).catch(() => {});
    const status = notModifiedFor(ctx.headers, merged, stored.entry.status) ? 304 : stored.entry.status;
    const response = fromStore(ctx, shared ? stored.entry : { ...stored.entry, headers: merged }, stored.body, "REVALIDATED", 0, status);
    // Cookies the upstream set on this revalidation are this client's alone.
    for (const cookie of upstream.headers.getSetCookie()) response.headers.append("set-cookie", cookie);
    return response;
  }
  if (stored !== undefined && upstream.status >= 500 && staleIfErrorAllows(ctx.headers, stored.entry, responseTime, rc.cache.config.heuristic_max / 1000)) {
    upstream.body?.cancel().catch(() => {});
    return staleFallback(ctx, stored.entry, stored.body, responseTime);
  }
  const headers = new Headers(upstream.headers);
  stripHopByHop(headers);
  // RFC 9110 §6.6.1: a cache records when a Date-less response arrived (Expires and heuristics need
  // it), and may do so for an invalid Date.
  if (httpDate(headers.get("date")) === undefined) headers.set("date", new Date(responseTime * 1000).toUTCString());
  headers.set("x-cache", "MISS");
  ctx.cacheStatus = "MISS";
  const storable =
    ctx.method === "GET" &&
    !headers.has("set-cookie") && // never share one client's cookie with others (as nginx does by default)
    isStorable({ method: ctx.method, requestHeaders: ctx.headers, authenticated: ctx.auth !== undefined, status: upstream.status, responseHeaders: headers });
  if (!storable) {
    state.collapseRelease?.(); // followers go upstream themselves
    return new Response(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers });
  }
  const vary = varyNames(headers.get("vary"));
  const selecting = selectingHeaders(vary, ctx.headers);
  const stored_headers = new Headers(headers);
  stored_headers.delete("x-cache");
  const tags = (headers.get(rc.config.tags_header) ?? "").split(/[\s,]+/).filter(Boolean);
  // Followers in this process are streamed the answer as it arrives (bounded: max_object).
  let source = upstream.body;
  const length = Number(headers.get("content-length") ?? Number.NaN);
  if (state.collapseRelease !== undefined && source !== null && length <= rc.cache.config.max_object) {
    const shared = new Broadcast(upstream.status, upstream.statusText, headers, new Headers(selecting));
    source = broadcastBody(source, shared, rc.cache.config.max_object);
    rc.cache.collapser.publish(state.key, shared);
  }
  const body = rc.cache.storeWhileStreaming(
    {
      key: state.key, varyKey: vary.map((n) => `${n}=${selecting[n] ?? ""}`).join("&"), status: upstream.status, headers: stored_headers,
      requestHeaders: selecting, requestTime: state.requestTime, responseTime, tags,
    },
    source,
    () => state.collapseRelease?.(),
  );
  state.collapseDeferred = state.collapseRelease !== undefined;
  return new Response(body, { status: upstream.status, statusText: upstream.statusText, headers });
}

/** A stale copy to serve when the upstream could not be reached at all (stale-if-error), if allowed. */
export function staleOnError(ctx: ProxyContext, rc: RouteCache | undefined, state: CacheState | undefined): Response | undefined {
  const stored = state?.stored;
  if (rc === undefined || stored === undefined || !staleIfErrorAllows(ctx.headers, stored.entry, wallSeconds(), rc.cache.config.heuristic_max / 1000)) return undefined;
  return staleFallback(ctx, stored.entry, stored.body, wallSeconds());
}

/** A stale copy standing in for a failed upstream: marked as a fallback (issue 3) and logged so. */
function staleFallback(ctx: ProxyContext, entry: Entry, body: Uint8Array, now: number): Response {
  ctx.fallback = "stale";
  const response = fromStore(ctx, entry, body, "STALE", currentAge(entry, now));
  response.headers.set("x-switchyard-fallback", "stale");
  return response;
}

/**
 * Unsafe methods invalidate (RFC 9111 §4.4) before their answer is sent, so a GET the client sends
 * right after cannot be answered from the entry its write just made stale.
 */
export async function invalidateAfter(ctx: ProxyContext, rc: RouteCache, status: number, responseHeaders: Headers): Promise<void> {
  let target: URL;
  try {
    target = new URL(`${ctx.listener.proto}://${ctx.host || "localhost"}${ctx.path}${ctx.query ? `?${ctx.query}` : ""}`);
  } catch {
    return; // not a URL a GET could have been stored under
  }
  const purges = invalidatedUris(ctx.method, status, target, responseHeaders).map((uri) => {
    const url = new URL(uri);
    const key = rc.key({ scheme: url.protocol.slice(0, -1), host: url.host, path: url.pathname, query: url.search.slice(1), headers: new Headers() });
    // The configured key headers are part of the key: purge every suffix of this URI.
    return rc.purge({ key: key.split("\n")[0]! });
  });
  if (purges.length === 0) return;
  // A store that fails to purge must not fail the write that went through: logged.
  await Promise.all(purges).catch((e: unknown) => console.error(JSON.stringify({ level: "error", msg: "cache invalidation failed", request_id: ctx.requestId, error: String(e) })));
}

const refreshing = new Set<string>();

/**
 * stale-while-revalidate (RFC 5861 §3): the stale copy has been served; `send` revalidates with
 * the upstream and the answer updates the cache. One refresh per key at a time.
 */
export function refreshInBackground(ctx: ProxyContext, rc: RouteCache, state: CacheState, send: () => Promise<Response>): void {
  if (refreshing.has(state.key)) return;
  refreshing.add(state.key);
  void send()
    .then(async (upstream) => {
      const answer = await cacheOnResponse(ctx, rc, state, upstream);
      await answer.arrayBuffer(); // drains the tee so the store side completes
    })
    .catch(() => {})
    .finally(() => refreshing.delete(state.key));
}
