/**
 * Which route and cluster a request would hit, and what the upstream would see — the route-test
 * tool behind `GET /route` on the admin API and `switchyard validate FILE --explain METHOD URL`.
 */
import { canonicalAuthority } from "../security/host.ts";
import { matchRoute, upstreamTarget } from "../proxy/router.ts";
import { needsNormalization, normalizePath, PathProblem } from "../security/path.ts";
import type { Runtime } from "../proxy/context.ts";

export interface Explained {
  route: string | null;
  /** Index of the route in the config. */
  index: number | null;
  cluster: string | null;
  /** Every cluster the route may send to (weights, override, failover), in order. */
  clusters: string[];
  /**
   * The path and query the upstream receives: the route's rewrites and the query parameters its
   * filters take off (an auth filter's credential: the first provider with one on the request is
   * taken to accept it), by the proxy's own code (router.ts's upstreamTarget).
   */
  upstream_path: string | null;
  /** The Host sent upstream (the route's host rewrite, then its request header rules); null when a rule removes it (then it is the endpoint's address). */
  upstream_host: string | null;
  endpoints: { address: string; available: boolean }[];
  websocket: boolean;
  cache: string | null;
  /** Why the request guard would refuse the path (first listener's path_normalization), else null. */
  refused: string | null;
}

export function explainRequest(runtime: Runtime, method: string, url: URL, headers: Headers): Explained {
  // Routes match the path as the guard normalizes it (WHATWG URL parsing has resolved dots, like Bun).
  const raw = url.pathname || "/";
  const path = needsNormalization(raw) ? normalizePath(raw, runtime.config.listeners[0]!.path_normalization) : raw;
  const none = { route: null, index: null, cluster: null, clusters: [], upstream_path: null, upstream_host: null, endpoints: [], websocket: false, cache: null };
  if (path instanceof PathProblem) return { ...none, refused: path.reason };
  // …and the host as the proxy route does (trailing dots dropped, see security/host.ts).
  const facts = { method: method.toUpperCase(), host: canonicalAuthority(url.host.toLowerCase()), path, query: url.search.slice(1), headers };
  const route = matchRoute(runtime.routes, facts);
  if (route === undefined) return { ...none, refused: null };
  const c = route.config;
  if (route.chooseCluster === undefined) {
    // A composition: no single cluster; its calls' clusters.
    const clusters = Object.values(c.compose?.calls ?? {}).map((call) => call.cluster);
    return { ...none, refused: null, route: route.name, index: runtime.routes.indexOf(route), clusters: [...new Set(clusters)] };
  }
  const cluster = route.chooseCluster(headers, () => 0);
  const clusters = [
    ...(c.to !== undefined ? [c.to] : c.rollout !== undefined ? [c.rollout.stable, c.rollout.canary] : c.weighted_clusters!.map((w) => w.cluster)),
    ...(c.override ? [c.override.cluster] : []),
    ...(c.failover ?? []),
  ];
  const available = new Set(cluster.available());
  // What the filters take off the query: as ctx.upstreamQueryRemove collects it in onRequest.
  let remove: string[] | undefined;
  for (const f of route.filters?.queryRemovers ?? []) {
    const names = f.explainQueryRemove!(facts);
    if (names.length > 0) (remove ??= []).push(...names);
  }
  // The Host as forward.ts's upstreamHeaders sets it: the rewrite (or the client's), then the route's header rules.
  const host = new Headers({ host: route.hostRewrite ?? facts.host });
  route.requestHeaders?.apply(host);
  return {
    route: route.name,
    index: runtime.routes.indexOf(route),
    cluster: cluster.name,
    clusters: [...new Set(clusters)],
    upstream_path: upstreamTarget("", route, facts.path, facts.query, remove),
    upstream_host: host.get("host"),
    endpoints: cluster.endpoints.map((e) => ({ address: e.address, available: available.has(e) })),
    websocket: c.websocket,
    cache: route.cache?.cache.name ?? null,
    refused: null,
  };
}
