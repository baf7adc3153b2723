/**
 * Which cluster a request goes to: the route's `to`, a weighted pick (canary), or its rollout's
 * side, unless an override header/cookie names one; then priority failover when that cluster has
 * no healthy endpoint. Compiled once per route at build time.
 */
import type { Cluster } from "../upstream/cluster.ts";
import { rolloutChoice, type StickySink } from "../rollout/choice.ts";
import type { RolloutHandle } from "../rollout/registry.ts";
import type { Route } from "./route-schema.ts";
import { cookieValue } from "../util/cookies.ts";

/** `sink`: where a rollout's sticky choice leaves its cookie, and the caller's identity (a claim). */
export type ClusterChoice = (headers: Headers, random?: () => number, sink?: StickySink) => Cluster;

export function compileClusterChoice(route: Route, clusters: ReadonlyMap<string, Cluster>, rollout?: RolloutHandle): ClusterChoice {
  const get = (name: string) => clusters.get(name)!;
  let primary: (random: () => number, headers: Headers, sink: StickySink | undefined) => Cluster;
  if (route.rollout !== undefined) {
    const side = rolloutChoice(rollout!, get(route.rollout.stable), get(route.rollout.canary));
    primary = (random, headers, sink) => side(headers, random, sink);
  } else if (route.to !== undefined) {
    const only = get(route.to);
    primary = () => only;
  } else {
    const weighted = route.weighted_clusters!.filter((w) => w.weight > 0).map((w) => ({ cluster: get(w.cluster), weight: w.weight }));
    const total = weighted.reduce((sum, w) => sum + w.weight, 0);
    primary = (random) => {
      let r = random() * total;
      for (const w of weighted) {
        r -= w.weight;
        if (r < 0) return w.cluster;
      }
      return weighted[weighted.length - 1]!.cluster;
    };
  }
  const o = route.override;
  const override = o ? { ...o, target: get(o.cluster) } : undefined;
  const failover = (route.failover ?? []).map(get);

  return (headers, random = Math.random, sink) => {
    let chosen: Cluster | undefined;
    if (override !== undefined) {
      const v = override.header !== undefined ? headers.get(override.header) ?? undefined : cookieValue(headers.get("cookie"), override.cookie!);
      if (v !== undefined && (override.value === undefined || v === override.value)) chosen = override.target;
    }
    chosen ??= primary(random, headers, sink);
    // Failover before panic (Envoy's priorities): a cluster with no healthy endpoint hands over
    // to the next in the chain that has one; only when none has, the chosen cluster serves in
    // panic mode (all its endpoints) — or answers 503 with panic_threshold 0.
    if (failover.length === 0 || chosen.healthyCount() > 0) return chosen;
    return failover.find((c) => c.healthyCount() > 0) ?? chosen;
  };
}
