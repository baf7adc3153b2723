/**
 * Route matching, pure: every condition is compiled once at build time into a predicate; per
 * request the router only evaluates them in order (first match wins, as nginx/Envoy do).
 */
import type { Route, RouteMatch, ValueMatch } from "./route-schema.ts";

/** What routing looks at, extracted once per request. */
export interface RequestFacts {
  readonly method: string;
  /** Host header, lower-cased, port included when the client sent one. */
  readonly host: string;
  readonly path: string;
  /** Raw query string without `?`. */
  readonly query: string;
  readonly headers: Headers;
}

type Predicate = (facts: RequestFacts, query: () => URLSearchParams) => boolean;

function compileValue(m: ValueMatch): (get: (name: string) => string | null) => boolean {
  if (m.present !== undefined) {
    const want = m.present;
    return (get) => (get(m.name) !== null) === want;
  }
  if (m.exact !== undefined) {
    const want = m.exact;
    return (get) => get(m.name) === want;
  }
  const re = new RegExp(m.regex!);
  return (get) => {
    const v = get(m.name);
    return v !== null && re.test(v);
  };
}

function compileHost(patterns: readonly string[]): Predicate {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const p of patterns) {
    if (p.startsWith("*.")) suffixes.push(p.slice(1)); // "*.example.com" → ".example.com"
    else exact.add(p);
  }
  return (facts) => {
    const withPort = facts.host;
    const colon = withPort.lastIndexOf(":");
    const bare = colon > withPort.lastIndexOf("]") && colon !== -1 ? withPort.slice(0, colon) : withPort;
    if (exact.has(bare) || exact.has(withPort)) return true;
    for (const s of suffixes) {
      if ((bare.endsWith(s) && bare.length > s.length) || (withPort.endsWith(s) && withPort.length > s.length)) return true;
    }
    return false;
  };
}

export function compileMatch(match: RouteMatch): Predicate {
  const checks: Predicate[] = [];
  if (match.methods) {
    const methods = new Set(match.methods);
    checks.push((f) => methods.has(f.method));
  }
  if (match.hosts) checks.push(compileHost(match.hosts));
  const path = match.path;
  if (path?.exact !== undefined) {
    const want = path.exact;
    checks.push((f) => f.path === want);
  } else if (path?.prefix !== undefined) {
    const want = path.prefix;
    checks.push((f) => f.path.startsWith(want));
  } else if (path?.regex !== undefined) {
    const re = new RegExp(path.regex);
    checks.push((f) => re.test(f.path));
  }
  for (const h of match.headers ?? []) {
    const test = compileValue(h);
    checks.push((f) => test((name) => f.headers.get(name)));
  }
  for (const q of match.query ?? []) {
    const test = compileValue(q);
    checks.push((_, query) => test((name) => query().get(name)));
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0]!;
  return (f, q) => {
    for (const c of checks) if (!c(f, q)) return false;
    return true;
  };
}

/** Builds the path rewrite of a route, or undefined when it has none. */
export function compileRewrite(route: Route): ((path: string) => string) | undefined {
  const rw = route.rewrite;
  if (rw?.path_prefix !== undefined) {
    const from = route.match.path!.prefix!;
    const to = rw.path_prefix;
    return (path) => {
      const rest = path.slice(from.length);
      // Joining "/" and "/x" must not give "//x"; joining "/api" and "x" must not give "/apix".
      if (to.endsWith("/") && rest.startsWith("/")) return to + rest.slice(1);
      if (!to.endsWith("/") && rest !== "" && !rest.startsWith("/")) return `${to}/${rest}`;
      return to + rest || "/";
    };
  }
  if (rw?.path_regex !== undefined) {
    const re = new RegExp(rw.path_regex.pattern);
    const sub = rw.path_regex.substitution;
    return (path) => {
      const out = path.replace(re, sub);
      return out.startsWith("/") ? out : `/${out}`;
    };
  }
  return undefined;
}

/** Builds a route's query rewrite, or undefined when it has none. */
export function compileQueryRewrite(route: Route): ((query: string) => string) | undefined {
  const q = route.rewrite?.query;
  if (!q || (!q.set && !q.remove)) return undefined;
  const set = Object.entries(q.set ?? {});
  const remove = q.remove ?? [];
  return (query) => {
    const params = new URLSearchParams(query);
    for (const name of remove) params.delete(name);
    for (const [name, value] of set) params.set(name, value);
    return params.toString();
  };
}

/** A route's compiled rewrites (CompiledRoute has them); undefined = none. */
export interface UpstreamRewrites {
  readonly rewritePath: ((path: string) => string) | undefined;
  readonly rewriteQuery: ((query: string) => string) | undefined;
}

/**
 * `origin` + the path and query the upstream is sent for a request routed with `path` and `query`
 * (as the guard normalized them): the route's path rewrite, its query rewrite (on the client's
 * query), then the parameters a filter took off (`ctx.upstreamQueryRemove`, e.g. an API key). The
 * ONE computation of it: forward.ts's upstreamUrl (requests, WebSockets, mirrors) and the
 * route-test tool (runtime/explain.ts, with origin "") both call it, so explain shows what the
 * upstream receives. A route without rewrites or removals makes no string but the result.
 */
export function upstreamTarget(origin: string, route: UpstreamRewrites, path: string, query: string, remove: readonly string[] | undefined): string {
  if (route.rewritePath !== undefined) path = route.rewritePath(path);
  if (route.rewriteQuery !== undefined) query = route.rewriteQuery(query);
  if (remove !== undefined && query !== "") {
    const params = new URLSearchParams(query);
    for (const name of remove) params.delete(name);
    query = params.toString();
  }
  if (query === "") return origin + path;
  // A regex rewrite may have added query parameters of its own; the client's follow them.
  return `${origin}${path}${path.includes("?") ? "&" : "?"}${query}`;
}

export interface Matchable {
  readonly test: Predicate;
}

/** First route whose predicate holds, or undefined. The query string is parsed at most once, and only if a route asks. */
export function matchRoute<R extends Matchable>(routes: readonly R[], facts: RequestFacts): R | undefined {
  let parsed: URLSearchParams | undefined;
  const query = () => (parsed ??= new URLSearchParams(facts.query));
  for (const r of routes) if (r.test(facts, query)) return r;
  return undefined;
}
