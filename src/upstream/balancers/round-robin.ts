import type { BalancedEndpoint, Balancer } from "./types.ts";

/** Each candidate in turn, ignoring weights. */
export function roundRobin<E extends BalancedEndpoint>(): Balancer<E> {
  let next = 0;
  return {
    pick(candidates) {
      const chosen = candidates[next % candidates.length]!;
      next = (next + 1) % 1_000_000_007;
      return chosen;
    },
  };
}
