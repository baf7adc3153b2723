import { type BalancedEndpoint, type Balancer, weightedRandom } from "./types.ts";

/**
 * Consistent hashing on a ring (Ketama-style). Each endpoint owns points on a 32-bit ring in
 * proportion to its weight; a key goes to the first point at or after its hash. Endpoints that
 * are not candidates (unhealthy, already tried) are skipped by walking on, so only their keys
 * move — and a removed endpoint moves only the keys it owned.
 */
export function ringHash<E extends BalancedEndpoint>(endpoints: readonly E[], perWeight: number, random: () => number = Math.random): Balancer<E> {
  const points: { hash: number; endpoint: E }[] = [];
  for (const e of endpoints) {
    for (let i = 0; i < e.weight * perWeight; i++) points.push({ hash: Bun.hash.xxHash32(`${e.address}_${i}`), endpoint: e });
  }
  points.sort((a, b) => a.hash - b.hash || (a.endpoint.address < b.endpoint.address ? -1 : 1));
  const hashes = Uint32Array.from(points, (p) => p.hash);

  return {
    pick(candidates, hash) {
      if (hash === undefined || points.length === 0) return weightedRandom(candidates, random);
      const allowed = candidates.length === endpoints.length ? undefined : new Set(candidates);
      // First point with hash ≥ key (binary search), then walk to an allowed endpoint.
      let lo = 0;
      let hi = hashes.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (hashes[mid]! < hash >>> 0) lo = mid + 1;
        else hi = mid;
      }
      for (let i = 0; i < points.length; i++) {
        const e = points[(lo + i) % points.length]!.endpoint;
        if (allowed === undefined || allowed.has(e)) return e;
      }
      return weightedRandom(candidates, random); // candidates outside the ring: not expected
    },
  };
}
