/**
 * Config snapshot → frozen Runtime: everything computable ahead of time (route predicates,
 * rewrites, header rule sets, clusters with their balancers) is built here, once per reload.
 */
import type { Config } from "../config/schema.ts";
import { compileFilters, type RuntimeDeps } from "../filters/filter.ts";
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
import { buildRouteCache } from "../cache/serve.ts";
import type { ProxyContext, CompiledFilters, Transcoder, CompiledRoute, RouteHandler, Runtime } from "../proxy/context.ts";
import type { MirrorConfig } from "../proxy/mirror-schema.ts";
import { compileHolds } from "../proxy/holds.ts";
import { subrequestRoute } from "../proxy/subrequest.ts";
import { type ClusterChoice, compileClusterChoice } from "../proxy/traffic.ts";
import { buildCluster, type Cluster } from "../upstream/cluster.ts";
import type { RouteCache } from "../cache/cache.ts";
import { measureFor } from "../rollout/measure.ts";
import { type RolloutHandle, rollouts } from "../rollout/registry.ts";
import type { FleetServices } from "../fleet/types.ts";


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
  const handles: RolloutHandle[] = [];
  const routes = config.routes.map((r, i): CompiledRoute => {
    const name = r.name ?? `route-${i}`;
    const rollout = r.rollout !== undefined ? rollouts.acquire(name, r.rollout, r.slo) : undefined;
    if (rollout !== undefined) handles.push(rollout);
    const requestHeaders = compileHeaderRules(r.headers?.request);
    const filters = compileFilters((r.filters ?? []).map((f) => buildFilter(f, depsFor(name))));
    const rewritePath = compileRewrite(r);
    const parent = { name, config: r, requestHeaders, filters };
    let handler: RouteHandler | undefined;
    if (r.compose) {
      // Composition, modules and transcoding are loaded for a config that has such a route.
      const { composeRoute } = require("../compose/route.ts") as typeof import("../compose/route.ts");
      const { buildComposePlan } = require("../compose/plan.ts") as typeof import("../compose/plan.ts");
      handler = composeRoute(buildComposePlan(parent, r.compose, clusters));
    }
    if (r.module) {
      const { moduleRoute } = require("../modules/route.ts") as typeof import("../modules/route.ts");
      handler = moduleRoute({
        module: r.module,
        app: modules.get(r.module)!.build({ name: r.module, clusters: [...clusters.keys()] }),
        clusters: new Map([...clusters].map(([n, c]) => [n, subrequestRoute(parent, c)])),
        path: rewritePath ?? stripPrefix(r.match.path?.prefix),
      });
    }
    const cache = r.cache ? buildRouteCache(caches.get(r.cache.name)!, r.cache, fleet?.cacheScope) : undefined;
    return {
      name,
      config: r,
      chooseCluster: handler !== undefined ? undefined : compileClusterChoice(r, clusters, rollout),
      handler,
      cache,
      holds: compileHolds(r, cache),
      mirror: r.mirror ? { cluster: clusters.get(r.mirror.cluster)!, config: r.mirror } : undefined,
      test: compileMatch(r.match),
      rewritePath,
      rewriteQuery: compileQueryRewrite(r),
      hostRewrite: r.rewrite?.host,
      requestHeaders,
      responseHeaders: compileHeaderRules(r.headers?.response),
      filters,
      transcode: r.grpc_transcode ? (require("../proxy/transcode/transcoder.ts") as typeof import("../proxy/transcode/transcoder.ts")).buildTranscoder(r.grpc_transcode) : undefined,
      rollout,
      chooseAfterFilters: r.rollout !== undefined && r.rollout.sticky !== false && r.rollout.sticky.claim !== undefined,
      measure: measureFor(name, rollout, r.slo),
    };
  });
  // Built: these rollouts are the ones in force from now on (new runs begin, replaced ones end).
  rollouts.commit(handles);
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
