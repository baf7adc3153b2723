/** The seam every balancing policy plugs into (one file per policy, registered in index.ts). */
export const BALANCER_TYPES = ["round_robin"] as const;
export type BalancerType = (typeof BALANCER_TYPES)[number];

export interface BalancedEndpoint {
  readonly weight: number;
}

/** Picks one of `candidates` (never empty); pure apart from its own counters. */
export interface Balancer {
  pick<E extends BalancedEndpoint>(candidates: readonly E[]): E;
}

export type BalancerFactory = () => Balancer;
