/**
 * Route filters (design.md: Filters): phase 2 of the pipeline runs each route's filters in config
 * order. A factory runs once per runtime build (compile what can be compiled there); the hooks it
 * returns run per request and do the minimum.
 */
import type { Config } from "../config/schema.ts";
import type { CompiledFilters, Filter } from "../proxy/context.ts";

/** The filter interface itself lives with the context it runs on (proxy/context.ts). */
export type { CompiledFilters, Filter, FilterVerdict } from "../proxy/context.ts";

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
