import { balancers } from "./balancers/index.ts";
import type { Balancer } from "./balancers/types.ts";
import { type ClusterConfig, parseEndpointUrl } from "./cluster-schema.ts";

export interface Endpoint {
  /** `http://host:port`, the base that request paths are appended to. */
  readonly origin: string;
  /** `host:port`, as logged. */
  readonly address: string;
  readonly hostname: string;
  readonly port: number;
  readonly tls: boolean;
  readonly weight: number;
  /** Time (ms, monotonic) a response last came back; a recent one means a pooled connection is likely warm. */
  lastResponseAt: number;
}

export interface Cluster {
  readonly name: string;
  readonly config: ClusterConfig;
  readonly endpoints: readonly Endpoint[];
  /** An endpoint not in `exclude`, or undefined when none is left. */
  pick(exclude?: ReadonlySet<Endpoint>): Endpoint | undefined;
}

export function buildEndpoint(text: string, weight: number): Endpoint {
  const url = parseEndpointUrl(text)!;
  const tls = url.protocol === "https:";
  const port = url.port ? Number(url.port) : tls ? 443 : 80;
  return { origin: url.origin, address: `${url.hostname}:${port}`, hostname: url.hostname, port, tls, weight, lastResponseAt: Number.NEGATIVE_INFINITY };
}

export function buildCluster(name: string, config: ClusterConfig): Cluster {
  const endpoints = config.endpoints.map((e) => (typeof e === "string" ? buildEndpoint(e, 1) : buildEndpoint(e.url, e.weight)));
  const balancer: Balancer = balancers[config.balancer.type]();
  return {
    name,
    config,
    endpoints,
    pick(exclude) {
      if (!exclude || exclude.size === 0) return balancer.pick(endpoints);
      const left = endpoints.filter((e) => !exclude.has(e));
      return left.length > 0 ? balancer.pick(left) : undefined;
    },
  };
}
