/**
 * Route filters (design.md: Filters): phase 2 of the pipeline runs each route's filters in config
 * order. A factory runs once per runtime build (compile what can be compiled there); the hooks it
 * returns run per request and do the minimum.
 */
import type { Config } from "../config/schema.ts";
import type { ProxyContext } from "../proxy/context.ts";
import type { SwitchyardError } from "../util/errors.ts";

/** What onRequest returns: nothing (go on), a Response (answered here), or an error (rendered as JSON). */
export type FilterVerdict = Response | SwitchyardError | undefined;

export interface Filter {
  /** The filter's type, used in logs and metrics. */
  readonly name: string;
  /** Phase 2. Returning a Response or an error ends the chain; the request is answered with it. */
  onRequest?(ctx: ProxyContext): FilterVerdict | Promise<FilterVerdict>;
  /** Phase 5, on every try's upstream request headers (after the route's own header rules). */
  onUpstreamRequest?(ctx: ProxyContext, headers: Headers): void;
  /**
   * Phase 6, before the response headers are finished, on every response that is not an error:
   * upstream, cached or local (a cache stores the upstream's original, so a hit is mapped again).
   * Returns a replacement, or nothing to keep it. A replacement with a Content-Length must have
   * its body in memory: it is sent whole, with that length. A throw (e.g. the upstream body
   * failing while read) ends the request as that failure.
   */
  onResponse?(ctx: ProxyContext, response: Response): Response | undefined | Promise<Response | undefined>;
  /** Phase 6, on the headers of every response the client gets: upstream, cached, local or error. */
  onResponseHeaders?(ctx: ProxyContext, headers: Headers, status: number): void;
  /** Phase 8, once per request; must not throw. */
  onLog?(ctx: ProxyContext): void;
  /**
   * Not on the request path: for the route-test tool (runtime/explain.ts), the query parameters
   * this filter takes off the upstream URL (ctx.upstreamQueryRemove) of a request like `request`,
   * were it let through.
   */
  explainQueryRemove?(request: Pick<ProxyContext, "headers" | "query">): readonly string[];
}

/** What a factory may use besides its own config. */
export interface RuntimeDeps {
  /** The whole config snapshot being built (named auth providers, rate limits, …). */
  readonly config: Config;
  /** The route the filter belongs to. */
  readonly routeName: string;
  /**
   * One instance per runtime for `key`: a named provider several routes refer to is built once.
   * `build` gets the instance the previous runtime had for the same key (if any), to carry state
   * such as token buckets or key caches across a reload when its settings did not change.
   */
  once<T>(key: string, build: (previous: T | undefined) => T): T;
}

export type FilterFactory<C> = (config: C, deps: RuntimeDeps) => Filter;

/** A route's filters, split by hook at build time so a request walks only the lists it needs. */
export interface CompiledFilters {
  readonly request: readonly Filter[];
  readonly upstreamRequest: readonly Filter[];
  /** In reverse config order, like responseHeaders. */
  readonly response: readonly Filter[];
  /** In reverse config order (the last filter sees the response first, as in Envoy). */
  readonly responseHeaders: readonly Filter[];
  readonly log: readonly Filter[];
  /** The filters that may take query parameters off the upstream URL (for explain). */
  readonly queryRemovers: readonly Filter[];
}

export function compileFilters(filters: readonly Filter[]): CompiledFilters | undefined {
  if (filters.length === 0) return undefined;
  return {
    request: filters.filter((f) => f.onRequest !== undefined),
    upstreamRequest: filters.filter((f) => f.onUpstreamRequest !== undefined),
    response: filters.filter((f) => f.onResponse !== undefined).reverse(),
    responseHeaders: filters.filter((f) => f.onResponseHeaders !== undefined).reverse(),
    log: filters.filter((f) => f.onLog !== undefined),
    queryRemovers: filters.filter((f) => f.explainQueryRemove !== undefined),
  };
}
