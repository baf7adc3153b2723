import { metrics } from "../observe/metrics.ts";
import { buildBalancer } from "./balancers/index.ts";
import type { Balancer } from "./balancers/types.ts";
import { type ClusterConfig, parseEndpointUrl } from "./cluster-schema.ts";
import { loadUpstreamTls, type UpstreamTlsMaterial } from "../security/tls-files.ts";
import { type UpstreamTlsOptions, upstreamTlsOptions } from "./upstream-tls.ts";
import { CircuitBreaker } from "./breaker.ts";
import { ClusterLimits } from "./limits.ts";
import { type Discovery, startDiscovery } from "./discovery/index.ts";
import type { EndpointSpec } from "./discovery/schema.ts";
import { compileHashKey, type HashFacts, type HashKey } from "./hash-key.ts";
import { type ActiveChecker, startActiveChecks } from "./health/active.ts";
import { OutlierDetector, type TryOutcome } from "./health/outlier.ts";
import { freshHealth, type HealthState, isAvailable } from "./health/state.ts";
import { bindTryCounters, noteTry, type TryCounters, type TryFailure } from "./health/tries.ts";
import { RetryBudget } from "./retry-budget.ts";
import { Semaphore } from "../util/semaphore.ts";
import type { LimitsConfig } from "./limits-schema.ts";
import { h2Fetch, type H2FetchInit } from "./h2-fetch.ts";

export interface Endpoint {
  /** `http://host:port`, the base that request paths are appended to. */
  readonly origin: string;
  /** `host:port`, as logged; also the endpoint's identity for hashing and across reloads. */
  readonly address: string;
  readonly hostname: string;
  readonly port: number;
  /** TLS settings for fetch and WebSocket (`tls` option) when the endpoint is https; undefined for http. */
  readonly tls: UpstreamTlsOptions | undefined;
  readonly weight: number;
  /** Active-check and outlier state; the same object is carried over when a reload keeps the endpoint. */
  readonly health: HealthState;
  /** Its tries by result (switchyard_upstream_tries_total). */
  readonly tries: TryCounters;
  /** The HTTP version spoken to it (its cluster's `protocol`). */
  readonly protocol: "http1" | "http2" | "http3";
  /**
   * Sends one HTTP request to it (fetch's signature): fetch itself, with HTTP/2 or HTTP/3 pinned
   * for https endpoints of such clusters, or the pooled h2c client for http:// ones with http2.
   */
  readonly send: (url: string, init: RequestInit) => Promise<Response>;
  /** Requests (and WebSocket sessions) in flight to this endpoint. */
  active: number;
  /** Time (ms, monotonic) a response last came back; a recent one means a pooled connection is likely warm. */
  lastResponseAt: number;
  /** Exchanges awaiting this endpoint's answer at once (limits.endpoint_in_flight); undefined: no cap. */
  readonly answerGate: Semaphore | undefined;
}

export interface Cluster {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly endpoints: readonly Endpoint[];
  /** Requests and retries in flight to this cluster, for the retry budget. */
  readonly budget: RetryBudget;
  readonly limits: ClusterLimits;
  readonly breaker: CircuitBreaker | undefined;
  /**
   * An endpoint chosen by the balancer among the available ones (healthy, not ejected — or all,
   * in panic) that are not in `exclude`; undefined when none is left.
   */
  pick(facts: HashFacts, exclude?: ReadonlySet<Endpoint>): Endpoint | undefined;
  /** Endpoints a request may go to now (for the admin API and tests). */
  available(): readonly Endpoint[];
  /** Endpoints that pass their checks and are not ejected (what `available` is when not in panic). */
  healthyCount(): number;
  /** Resolves the cluster's discovery now (true when its endpoints changed); false without discovery. */
  refreshDiscovery(): Promise<boolean>;
  /**
   * Feeds one try's outcome to outlier detection, and to the endpoint's try counts and last
   * failure (`failure`: why a try got no answer — its error's code and message).
   */
  report(endpoint: Endpoint, outcome: TryOutcome, failure?: TryFailure): void;
  /** Stops this cluster's timers (health checks, outlier reviews); the health state lives on. */
  dispose(): void;
}

/** `tls`: the cluster's upstream TLS files, applied when the endpoint is https; `cluster`: its name, for the try counters. */
export function buildEndpoint(text: string, weight: number, health: HealthState = freshHealth(), tls?: UpstreamTlsMaterial, cluster = "", protocol: Endpoint["protocol"] = "http1", limits?: Pick<LimitsConfig, "endpoint_in_flight" | "max_pending">): Endpoint {
  const url = parseEndpointUrl(text)!;
  const secure = url.protocol === "https:";
  const port = url.port ? Number(url.port) : secure ? 443 : 80;
  // URL keeps an IPv6 host in brackets; TLS names it without them.
  const bare = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const address = `${url.hostname}:${port}`;
  const endpoint: Endpoint = {
    origin: url.origin, address, hostname: url.hostname, port, weight, health,
    tls: secure ? upstreamTlsOptions(bare, tls) : undefined,
    tries: bindTryCounters(cluster, address),
    protocol, send: fetch,
    active: 0, lastResponseAt: Number.NEGATIVE_INFINITY,
    answerGate: limits !== undefined && limits.endpoint_in_flight > 0 ? new Semaphore(limits.endpoint_in_flight, limits.max_pending) : undefined,
  };
  return protocol === "http1" ? endpoint : { ...endpoint, send: sender(endpoint, protocol, secure) };
}

/** How requests reach an endpoint of an http2 or http3 cluster (measured: fetch speaks both over TLS only). */
function sender(endpoint: Endpoint, protocol: "http2" | "http3", secure: boolean): Endpoint["send"] {
  if (!secure) return (url, init) => h2Fetch(endpoint, url, init as H2FetchInit);
  if (protocol === "http2") return (url, init) => fetch(url, { ...init, protocol } as RequestInit);
  // Bun's fetch over HTTP/3 refuses tls.serverName and tls.ca (HTTP3Unsupported): only the verify switch goes.
  const tls = { rejectUnauthorized: endpoint.tls?.rejectUnauthorized ?? true };
  return (url, init) => fetch(url, { ...init, protocol, tls } as RequestInit);
}

/** Builds a cluster; endpoints that `previous` (the same cluster before a reload) also had keep their health. */
export function buildCluster(name: string, config: ClusterConfig, previousCluster?: Cluster): Cluster {
  // Only the previous endpoints' health is kept, not the previous cluster itself (else every
  // reload would keep all the ones before it alive).
  const inherited = new Map(previousCluster?.endpoints.map((e) => [e.address, e.health]));
  const inheritedSpecs = previousCluster?.endpoints.map((e) => ({ url: e.origin, weight: e.weight }));
  const b = config.balancer;
  // Read once per build (start and every reload); validateConfig has already checked them.
  const tlsMaterial = config.tls ? loadUpstreamTls(config.tls, ["clusters", name, "tls"]) : undefined;
  const hashKey: HashKey | undefined = b.type === "ring_hash" || b.type === "maglev" ? compileHashKey(b.hash_on) : undefined;

  // Everything that depends on the endpoint set is rebuilt when discovery changes it.
  let endpoints: Endpoint[] = [];
  let balancer: Balancer<Endpoint> = buildBalancer(endpoints, config.balancer);
  let checker: ActiveChecker | undefined;
  let outlier: OutlierDetector | undefined;

  // The available list is recomputed only when health changes or an ejection expires.
  let pool: readonly Endpoint[] = endpoints;
  let healthy = 0;
  let dirty = true;
  let nextExpiry = Number.POSITIVE_INFINITY;
  const markDirty = () => {
    dirty = true;
  };
  const refresh = (now: number) => {
    const up = endpoints.filter((e) => isAvailable(e.health, now));
    healthy = up.length;
    // Panic: with too few healthy endpoints, spreading over all beats crushing the few.
    pool = endpoints.length > 0 && (up.length / endpoints.length) * 100 < config.panic_threshold ? endpoints : up;
    nextExpiry = Math.min(...endpoints.map((e) => (e.health.ejectedUntil > now ? e.health.ejectedUntil : Number.POSITIVE_INFINITY)));
    dirty = false;
  };
  const available = () => {
    const now = performance.now();
    if (dirty || now >= nextExpiry) refresh(now);
    return pool;
  };

  /** Installs a new endpoint set; endpoints already known (by address) keep their health state. */
  const setEndpoints = (specs: readonly EndpointSpec[]) => {
    const kept = new Map([...inherited, ...endpoints.map((e): [string, HealthState] => [e.address, e.health])]);
    endpoints = specs.flatMap((spec) => {
      const probe = buildEndpoint(spec.url, spec.weight, undefined, undefined, "", config.protocol);
      // A cluster with tls settings never dials in the clear (a discovered http:// endpoint is left out).
      if (tlsMaterial !== undefined && probe.tls === undefined) {
        console.error(JSON.stringify({ level: "warn", msg: "endpoint left out: the cluster has tls settings but the endpoint is http", cluster: name, endpoint: spec.url }));
        return [];
      }
      return [buildEndpoint(spec.url, spec.weight, kept.get(probe.address), tlsMaterial, name, config.protocol, config.limits)];
    });
    if (!config.health_check) for (const e of endpoints) e.health.activeHealthy = true;
    balancer = buildBalancer(endpoints, config.balancer);
    checker?.stop();
    outlier?.stop();
    checker = config.health_check ? startActiveChecks(endpoints, config.health_check, markDirty) : undefined;
    outlier = config.outlier ? new OutlierDetector(endpoints, config.outlier, markDirty, undefined, () => metrics.ejections.inc([name])) : undefined;
    markDirty();
  };

  let discovery: Discovery | undefined;
  if (config.discovery) {
    // Until the first answer, a reload keeps serving the endpoints it had.
    if (inheritedSpecs) setEndpoints(inheritedSpecs);
    discovery = startDiscovery(name, config.discovery, setEndpoints);
  } else {
    setEndpoints((config.endpoints ?? []).map((e) => (typeof e === "string" ? { url: e, weight: 1 } : { url: e.url, weight: e.weight })));
  }

  return {
    name,
    config,
    get endpoints() {
      return endpoints;
    },
    budget: new RetryBudget(config.retry_budget),
    limits: new ClusterLimits(config.limits),
    breaker: config.breaker ? new CircuitBreaker(config.breaker, undefined, () => metrics.breakerTrips.inc([name])) : undefined,
    pick(facts, exclude) {
      const candidates = available();
      if (candidates.length === 0) return undefined;
      const hash = hashKey?.(facts);
      if (!exclude || exclude.size === 0) return balancer.pick(candidates, hash);
      const left = candidates.filter((e) => !exclude.has(e));
      return left.length > 0 ? balancer.pick(left, hash) : undefined;
    },
    available,
    healthyCount() {
      available();
      return healthy;
    },
    report(endpoint, outcome, failure) {
      outlier?.report(endpoint, outcome);
      noteTry(endpoint, outcome, failure);
    },
    refreshDiscovery: () => discovery?.refresh() ?? Promise.resolve(false),
    dispose() {
      discovery?.stop();
      checker?.stop();
      outlier?.stop();
    },
  };
}
