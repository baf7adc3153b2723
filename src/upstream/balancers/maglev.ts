import { type BalancedEndpoint, type Balancer, weightedRandom } from "./types.ts";

/**
 * Maglev consistent hashing (Google's Maglev paper, §3.4): each endpoint walks its own
 * permutation of a prime-sized table and claims free slots in turn, in proportion to its weight,
 * until the table is full. A pick is one lookup. A key whose slot belongs to a non-candidate
 * probes the following slots, which belong to endpoints spread at random, so its load spreads too.
 */
export function maglev<E extends BalancedEndpoint>(endpoints: readonly E[], tableSize: number, random: () => number = Math.random): Balancer<E> {
  const table = buildTable(endpoints, tableSize);
  return {
    pick(candidates, hash) {
      if (hash === undefined || endpoints.length === 0) return weightedRandom(candidates, random);
      const allowed = candidates.length === endpoints.length ? undefined : new Set(candidates);
      const start = (hash >>> 0) % tableSize;
      for (let i = 0; i < tableSize; i++) {
        const e = endpoints[table[(start + i) % tableSize]!]!;
        if (allowed === undefined || allowed.has(e)) return e;
      }
      return weightedRandom(candidates, random);
    },
  };
}

export function buildTable(endpoints: readonly BalancedEndpoint[], m: number): Int32Array {
  const table = new Int32Array(m).fill(-1);
  const n = endpoints.length;
  if (n === 0) return table;
  const offset = endpoints.map((e) => Bun.hash.xxHash32(e.address, 0x9e3779b9) % m);
  const skip = endpoints.map((e) => (Bun.hash.xxHash32(e.address, 0x85ebca6b) % (m - 1)) + 1);
  const next = new Array<number>(n).fill(0);
  const maxWeight = Math.max(...endpoints.map((e) => e.weight));
  // Weighted fill: each round, an endpoint takes a turn when its accumulated weight allows.
  const credit = new Array<number>(n).fill(0);
  let filled = 0;
  while (filled < m) {
    for (let i = 0; i < n && filled < m; i++) {
      credit[i]! += endpoints[i]!.weight / maxWeight;
      if (credit[i]! < 1) continue;
      credit[i]! -= 1;
      let slot = (offset[i]! + next[i]! * skip[i]!) % m;
      while (table[slot] !== -1) {
        next[i]!++;
        slot = (offset[i]! + next[i]! * skip[i]!) % m;
      }
      table[slot] = i;
      next[i]!++;
      filled++;
    }
  }
  return table;
}
