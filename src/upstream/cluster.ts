import { RetryBudget } from "../proxy/retry.ts";
import { buildBalancer } from "./balancers/index.ts";
import { type ClusterConfig, parseEndpointUrl } from "./cluster-schema.ts";
import { compileHashKey, type HashFacts, type HashKey } from "./hash-key.ts";

export interface Endpoint {
  /** `http://host:port`, the base that request paths are appended to. */
  readonly origin: string;
  /** `host:port`, as logged; also the endpoint's identity for hashing. */
  readonly address: string;
  readonly hostname: string;
  readonly port: number;
  readonly tls: boolean;
  readonly weight: number;
  /** Requests (and WebSocket sessions) in flight to this endpoint. */
  active: number;
  /** Time (ms, monotonic) a response last came back; a recent one means a pooled connection is likely warm. */
  lastResponseAt: number;
}

export interface Cluster {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly endpoints: readonly Endpoint[];
  /** Requests and retries in flight to this cluster, for the retry budget. */
  readonly budget: RetryBudget;
  /** An endpoint not in `exclude`, chosen by the cluster's balancer; undefined when none is left. */
  pick(facts: HashFacts, exclude?: ReadonlySet<Endpoint>): Endpoint | undefined;
}

export function buildEndpoint(text: string, weight: number): Endpoint {
  const url = parseEndpointUrl(text)!;
  const tls = url.protocol === "https:";
  const port = url.port ? Number(url.port) : tls ? 443 : 80;
  return {
    origin: url.origin, address: `${url.hostname}:${port}`, hostname: url.hostname, port, tls, weight,
    active: 0, lastResponseAt: Number.NEGATIVE_INFINITY,
  };
}

export function buildCluster(name: string, config: ClusterConfig): Cluster {
  const endpoints = config.endpoints.map((e) => (typeof e === "string" ? buildEndpoint(e, 1) : buildEndpoint(e.url, e.weight)));
  const balancer = buildBalancer(endpoints, config.balancer);
  const b = config.balancer;
  const hashKey: HashKey | undefined = b.type === "ring_hash" || b.type === "maglev" ? compileHashKey(b.hash_on) : undefined;
  return {
    name,
    config,
    endpoints,
    budget: new RetryBudget(config.retry_budget),
    pick(facts, exclude) {
      const hash = hashKey?.(facts);
      if (!exclude || exclude.size === 0) return balancer.pick(endpoints, hash);
      const left = endpoints.filter((e) => !exclude.has(e));
      return left.length > 0 ? balancer.pick(left, hash) : undefined;
    },
  };
}
