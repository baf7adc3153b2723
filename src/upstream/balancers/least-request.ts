import type { BalancedEndpoint, Balancer } from "./types.ts";
import { weightedRoundRobin } from "./weighted-round-robin.ts";

/**
 * Envoy's least_request. Equal weights: power of N choices — sample `choiceCount` distinct
 * candidates at random, take the one with fewest requests in flight (cheap, and no herd on the
 * globally least loaded). Unequal weights: weighted round robin on weight / (in-flight + 1), so
 * weights hold when idle and load shifts picks away from a busy endpoint.
 */
export function leastRequest<E extends BalancedEndpoint>(choiceCount: number, random: () => number = Math.random): Balancer<E> {
  const weighted = weightedRoundRobin<E>((e) => e.weight / (e.active + 1));
  return {
    pick(candidates, hash) {
      const n = candidates.length;
      if (n === 1) return candidates[0]!;
      const w = candidates[0]!.weight;
      if (candidates.some((c) => c.weight !== w)) return weighted.pick(candidates, hash);
      const samples = Math.min(choiceCount, n);
      const seen = new Set<number>();
      let best: E | undefined;
      while (seen.size < samples) {
        const idx = Math.floor(random() * n);
        if (seen.has(idx)) continue;
        seen.add(idx);
        const c = candidates[idx]!;
        if (best === undefined || c.active < best.active) best = c;
      }
      return best!;
    },
  };
}
