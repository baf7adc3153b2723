import type { Balancer } from "./types.ts";

/** Plain round robin over the candidates it is given (weights are for the weighted policies). */
export function roundRobin(): Balancer {
  let next = 0;
  return {
    pick(candidates) {
      const chosen = candidates[next % candidates.length]!;
      next = (next + 1) % 1_000_000_007;
      return chosen;
    },
  };
}
