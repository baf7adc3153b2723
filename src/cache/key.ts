/** Cache keys: scheme, host, path and the normalized query (sorted, ignored parameters left out), plus configured headers. */
import type { RouteCacheConfig } from "./schema.ts";

export interface KeyFacts {
  readonly scheme: string;
  readonly host: string;
  readonly path: string;
  /** Raw query string without `?`. */
  readonly query: string;
  readonly headers: Headers;
}

export function normalizeQuery(query: string, ignore: ReadonlySet<string>): string {
  if (query === "") return "";
  const params = new URLSearchParams(query);
  const kept = [...params].filter(([name]) => !ignore.has(name));
  kept.sort(([a, av], [b, bv]) => (a === b ? (av < bv ? -1 : av > bv ? 1 : 0) : a < b ? -1 : 1));
  return new URLSearchParams(kept).toString();
}

export function compileCacheKey(config: RouteCacheConfig): (facts: KeyFacts) => string {
  const ignore = new Set(config.key.ignore_query);
  const headers = config.key.headers.map((h) => h.toLowerCase());
  return (f) => {
    const q = normalizeQuery(f.query, ignore);
    let key = `${f.scheme}://${f.host}${f.path}${q === "" ? "" : `?${q}`}`;
    for (const h of headers) key += `\n${h}: ${f.headers.get(h) ?? ""}`;
    return key;
  };
}

/** The Vary names of a response, lower-cased. */
export function varyNames(vary: string | null): string[] {
  return vary === null ? [] : vary.split(",").map((v) => v.trim().toLowerCase()).filter(Boolean);
}

/** The request's values for those names, as stored beside the entry (secondary key, RFC 9111 §4.1). */
export function selectingHeaders(names: readonly string[], request: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = request.get(n);
    if (v !== null) out[n] = v;
  }
  return out;
}
