/** The seam every balancing policy plugs into (one pure file per policy, registered in index.ts). */
import type { BalancerConfig } from "./schema.ts";

export type BalancerType = BalancerConfig["type"];

export interface BalancedEndpoint {
  /** Stable identity (host:port): hashing places endpoints by it. */
  readonly address: string;
  readonly weight: number;
  /** Requests in flight to this endpoint now (least_request reads it). */
  readonly active: number;
}

/**
 * Picks one of `candidates`: a non-empty subset (healthy, not yet tried) of the endpoints the
 * balancer was built for. `hash` is the request's key hash for the consistent-hash policies
 * (undefined when the request lacks the key). Pure apart from the balancer's own counters;
 * `random` is injectable for tests.
 */
export interface Balancer<E extends BalancedEndpoint> {
  pick(candidates: readonly E[], hash: number | undefined): E;
}

export type BalancerFactory<C extends BalancerConfig> = <E extends BalancedEndpoint>(
  endpoints: readonly E[],
  config: C,
  random?: () => number,
) => Balancer<E>;

/** A weighted random choice among `candidates`. */
export function weightedRandom<E extends BalancedEndpoint>(candidates: readonly E[], random: () => number): E {
  let total = 0;
  for (const c of candidates) total += c.weight;
  let r = random() * total;
  for (const c of candidates) {
    r -= c.weight;
    if (r < 0) return c;
  }
  return candidates[candidates.length - 1]!;
}
