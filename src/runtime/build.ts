/**
 * Config snapshot → frozen Runtime: everything computable ahead of time (route predicates,
 * rewrites, header rule sets, clusters with their balancers) is built here, once per reload.
 */
import { composeRoute } from "../../routes/compose.ts";
import { moduleRoute } from "../../routes/modules.ts";
import { buildComposePlan } from "../compose/plan.ts";
import type { Config } from "../config/schema.ts";
import { type CompiledFilters, compileFilters, type RuntimeDeps } from "../filters/filter.ts";
import { credentialLocations } from "../filters/auth/auth.ts";
import { buildFilter } from "../filters/index.ts";
import { loadConfigModules } from "../modules/load.ts";
import { type AccessLog, createAccessLog } from "../observe/access-log.ts";
import { acquireExporter, releaseExporter } from "../observe/span-exporter.ts";
import { Tracer } from "../observe/tracing.ts";
import { type CompiledHeaderRules, compileHeaderRules } from "../proxy/headers.ts";
import type { Route } from "../proxy/route-schema.ts";
import { compileMatch, compileQueryRewrite, compileRewrite, type RequestFacts } from "../proxy/router.ts";
import { HttpCache } from "../cache/cache.ts";
import { buildRouteCache, type CacheScope, type RouteCache } from "../cache/serve.ts";
import type { FleetServices } from "../fleet/services.ts";
import type { ProxyContext } from "../proxy/context.ts";
import type { MirrorConfig } from "../proxy/mirror.ts";
import { subrequestRoute } from "../proxy/subrequest.ts";
import { type ClusterChoice, compileClusterChoice } from "../proxy/traffic.ts";
import { buildCluster, type Cluster } from "../upstream/cluster.ts";
import { buildTranscoder, type Transcoder } from "../proxy/transcode/transcoder.ts";

/** Answers a request here instead of forwarding it to one cluster (composition, a module); ends with respond() or fail(). */
export type RouteHandler = (ctx: ProxyContext) => Promise<Response>;

export interface CompiledRoute {
  readonly name: string;
  readonly config: Route;
  /** The cluster for one request (weights, override, failover); undefined on a route with a handler. */
  readonly chooseCluster: ClusterChoice | undefined;
  /** The route's own answer (compose, module), run after its request filters; undefined on a forwarding route. */
  readonly handler: RouteHandler | undefined;
  readonly cache: RouteCache | undefined;
  readonly mirror: { readonly cluster: Cluster; readonly config: MirrorConfig } | undefined;
  readonly test: (facts: RequestFacts, query: () => URLSearchParams) => boolean;
  readonly rewritePath: ((path: string) => string) | undefined;
  readonly rewriteQuery: ((query: string) => string) | undefined;
  readonly hostRewrite: string | undefined;
  readonly requestHeaders: CompiledHeaderRules | undefined;
  readonly responseHeaders: CompiledHeaderRules | undefined;
  /** The route's filters by hook; undefined when it has none. */
  readonly filters: CompiledFilters | undefined;
  /** HTTP/JSON → RPC translation (grpc_transcode); undefined on plain HTTP routes. */
  readonly transcode: Transcoder | undefined;
}

export interface Runtime {
  /** Increases by one with every successful (re)load. */
  readonly version: number;
  readonly config: Config;
  readonly routes: readonly CompiledRoute[];
  readonly clusters: ReadonlyMap<string, Cluster>;
  readonly caches: ReadonlyMap<string, HttpCache>;
  readonly accessLog: AccessLog;
  /** Spans for sampled requests; undefined when tracing is off (the request path checks just that). */
  readonly tracer: Tracer | undefined;
  /** What this instance shares with the others of its fleet (fleet.redis), bound at start; undefined alone. */
  readonly fleet: FleetServices | undefined;
  /** Where cache purges go (this machine, or every instance of the fleet) and whether entries may be served. */
  readonly cacheScope: CacheScope | undefined;
  /** Instances shared by the routes' filters (named providers, limiters), by key (RuntimeDeps.once). */
  readonly resources: ReadonlyMap<string, unknown>;
  /**
   * Stops the runtime's timers (health checks, outlier reviews) once a newer one replaces it, and
   * disposes its shared resources (a Redis connection…) that `successor` did not take over.
   */
  dispose(successor?: Runtime): void;
}

/**
 * Builds a runtime; clusters that `previous` also had keep their endpoints' health state. `fleet`:
 * the instance's fleet services (bound at start, the same for every runtime of the process).
 */
export function buildRuntime(config: Config, version: number, previous?: Runtime, fleet?: FleetServices): Runtime {
  const clusters = new Map<string, Cluster>();
  // A cache whose settings did not change is kept (with its memory tier) across reloads.
  const caches = new Map<string, HttpCache>();
  for (const [name, c] of Object.entries(config.caches)) {
    const before = previous?.caches.get(name);
    caches.set(name, before !== undefined && JSON.stringify(before.config) === JSON.stringify(c) ? before : new HttpCache(name, c));
  }
  // The access log first: it can fail (an unwritable path), and clusters start timers.
  const accessLog = createAccessLog(config.access_log, credentialLocations(config.auth));
  // An unchanged tracing config keeps its exporter (and queue) across the reload.
  const tracing = config.telemetry.tracing;
  const tracer = tracing?.enabled ? new Tracer(tracing, acquireExporter(tracing)) : undefined;
  const resources = new Map<string, unknown>();
  const stopTimers = () => {
    for (const cluster of clusters.values()) cluster.dispose();
    if (tracer !== undefined) releaseExporter(tracer.exporter);
  };
  const dispose = (successor?: Runtime) => {
    stopTimers();
    disposeResources(resources, successor?.resources);
  };
  try {
    for (const [name, c] of Object.entries(config.clusters)) clusters.set(name, buildCluster(name, c, previous?.clusters.get(name)));
    return finishRuntime(config, version, previous, clusters, caches, accessLog, tracer, resources, dispose, fleet);
  } catch (e) {
    // A refused reload leaves no health checks or watchers running, and closes only what it opened itself.
    stopTimers();
    disposeResources(resources, previous?.resources);
    throw e;
  }
}

/** Disposes the resources (those with a dispose method) that `kept` does not also hold. */
function disposeResources(resources: ReadonlyMap<string, unknown>, kept: ReadonlyMap<string, unknown> | undefined): void {
  const stays = new Set(kept?.values());
  for (const resource of resources.values()) {
    if (stays.has(resource)) continue;
    const disposable = resource as { dispose?: unknown } | null;
    if (typeof disposable?.dispose === "function") (disposable.dispose as () => void)();
  }
}

/** The routes (with their filters, which may fail to build: a key file that cannot be read). */
function finishRuntime(
  config: Config, version: number, previous: Runtime | undefined, clusters: Map<string, Cluster>,
  caches: Map<string, HttpCache>, accessLog: AccessLog, tracer: Tracer | undefined, resources: Map<string, unknown>,
  dispose: (successor?: Runtime) => void, fleet: FleetServices | undefined,
): Runtime {
  const depsFor = (routeName: string): RuntimeDeps => ({
    config,
    routeName,
    once<T>(key: string, build: (previous: T | undefined) => T): T {
      if (!resources.has(key)) resources.set(key, build(previous?.resources.get(key) as T | undefined));
      return resources.get(key) as T;
    },
  });
  const modules = loadConfigModules(config);
  const routes = config.routes.map((r, i): CompiledRoute => {
    const name = r.name ?? `route-${i}`;
    const requestHeaders = compileHeaderRules(r.headers?.request);
    const filters = compileFilters((r.filters ?? []).map((f) => buildFilter(f, depsFor(name))));
    const rewritePath = compileRewrite(r);
    const parent = { name, config: r, requestHeaders, filters };
    let handler: RouteHandler | undefined;
    if (r.compose) handler = composeRoute(buildComposePlan(parent, r.compose, clusters));
    if (r.module) {
      handler = moduleRoute({
        module: r.module,
        app: modules.get(r.module)!.build({ name: r.module, clusters: [...clusters.keys()] }),
        clusters: new Map([...clusters].map(([n, c]) => [n, subrequestRoute(parent, c)])),
        path: rewritePath ?? stripPrefix(r.match.path?.prefix),
      });
    }
    return {
      name,
      config: r,
      chooseCluster: handler !== undefined ? undefined : compileClusterChoice(r, clusters),
      handler,
      cache: r.cache ? buildRouteCache(caches.get(r.cache.name)!, r.cache, fleet?.cacheScope) : undefined,
      mirror: r.mirror ? { cluster: clusters.get(r.mirror.cluster)!, config: r.mirror } : undefined,
      test: compileMatch(r.match),
      rewritePath,
      rewriteQuery: compileQueryRewrite(r),
      hostRewrite: r.rewrite?.host,
      requestHeaders,
      responseHeaders: compileHeaderRules(r.headers?.response),
      filters,
      transcode: r.grpc_transcode ? buildTranscoder(r.grpc_transcode) : undefined,
    };
  });
  return Object.freeze({ version, config, routes, clusters, caches, accessLog, tracer, resources, fleet, cacheScope: fleet?.cacheScope, dispose });
}

/** The path a module sees: without the route's path prefix (`/bff/home` → `/home` under `/bff`). */
function stripPrefix(prefix: string | undefined): (path: string) => string {
  if (prefix === undefined || prefix === "/") return (path) => path;
  return (path) => {
    const rest = path.slice(prefix.length);
    return rest.startsWith("/") ? rest : `/${rest}`;
  };
}
