import type { BalancedEndpoint, Balancer } from "./types.ts";

/**
 * Smooth weighted round robin (nginx's algorithm): each pick adds every candidate's weight to its
 * running score, takes the highest, and subtracts the total from it. Weights 1:3 give b a b b,
 * interleaved, and the spread is exact over any window of sum(weights) picks. `weightOf` lets
 * least_request feed in load-adjusted weights.
 */
export function weightedRoundRobin<E extends BalancedEndpoint>(weightOf: (e: E) => number = (e) => e.weight): Balancer<E> {
  const score = new Map<E, number>();
  return {
    pick(candidates) {
      let total = 0;
      let best: E | undefined;
      let bestScore = Number.NEGATIVE_INFINITY;
      for (const c of candidates) {
        const w = weightOf(c);
        const s = (score.get(c) ?? 0) + w;
        score.set(c, s);
        total += w;
        if (s > bestScore) {
          best = c;
          bestScore = s;
        }
      }
      score.set(best!, bestScore - total);
      return best!;
    },
  };
}
