import { type BalancedEndpoint, type Balancer, weightedRandom } from "./types.ts";

/** Weighted random. */
export function randomBalancer<E extends BalancedEndpoint>(random: () => number = Math.random): Balancer<E> {
  return { pick: (candidates) => weightedRandom(candidates, random) };
}
