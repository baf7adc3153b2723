/**
 * Per-window counts of one side of a rollout (or of an SLO), in one preallocated Float64Array, and
 * the figures derived from them. The log phase only increments numbers here (no allocation per
 * request); error rate and p99 are computed when the controller looks.
 *
 * Layout of one side: [requests, errors, slow, bucket 0 … bucket N-1, overflow], where bucket i
 * counts durations ≤ LATENCY_BOUNDS_MS[i] and above the bound before it (not cumulative), and
 * `slow` counts durations above the route's SLO latency threshold (0 without one).
 */

/** Upper bounds of the latency buckets, in ms (dense where checks usually sit: 50 ms – 1 s). */
export const LATENCY_BOUNDS_MS = Float64Array.from([
  1, 2, 5, 10, 15, 20, 30, 40, 50, 60, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 500, 600, 750, 1000,
  1250, 1500, 2000, 2500, 3000, 5000, 7500, 10_000, 20_000, 30_000, 60_000,
]);

export const REQUESTS = 0;
export const ERRORS = 1;
export const SLOW = 2;
const FIRST_BUCKET = 3;
/** Numbers per side. */
export const SIDE_SIZE = FIRST_BUCKET + LATENCY_BOUNDS_MS.length + 1;

/** Adds one request to the side starting at `offset` of `counts`. Hot path: no allocation. */
export function countRequest(counts: Float64Array, offset: number, failed: boolean, ms: number, slowAboveMs: number): void {
  counts[offset + REQUESTS]!++;
  if (failed) counts[offset + ERRORS]!++;
  if (slowAboveMs > 0 && ms > slowAboveMs) counts[offset + SLOW]!++;
  let i = 0;
  const n = LATENCY_BOUNDS_MS.length;
  while (i < n && ms > LATENCY_BOUNDS_MS[i]!) i++;
  counts[offset + FIRST_BUCKET + i]!++;
}

/** Adds `from` (one side, SIDE_SIZE numbers from `fromOffset`) into `into` at `intoOffset`. */
export function addSide(into: Float64Array, intoOffset: number, from: ArrayLike<number>, fromOffset: number): void {
  for (let i = 0; i < SIDE_SIZE; i++) into[intoOffset + i]! += from[fromOffset + i] ?? 0;
}

/**
 * The q-quantile of a side's durations, in ms, interpolated inside its bucket as Prometheus's
 * histogram_quantile does; the last finite bound when it falls in the overflow; 0 without requests.
 */
export function quantileMs(counts: ArrayLike<number>, offset: number, q: number): number {
  let total = 0;
  for (let i = 0; i <= LATENCY_BOUNDS_MS.length; i++) total += counts[offset + FIRST_BUCKET + i]!;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < LATENCY_BOUNDS_MS.length; i++) {
    const inBucket = counts[offset + FIRST_BUCKET + i]!;
    if (seen + inBucket >= rank && inBucket > 0) {
      const lower = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]!;
      const upper = LATENCY_BOUNDS_MS[i]!;
      return lower + (upper - lower) * ((rank - seen) / inBucket);
    }
    seen += inBucket;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1]!;
}

/** What the analysis and the status page read of one side over a window. */
export interface SideFigures {
  requests: number;
  errors: number;
  /** errors / requests (0 without requests). */
  error_rate: number;
  /** Requests slower than the route's SLO latency threshold, as a share (0 without an SLO). */
  slow_rate: number;
  p99_ms: number;
}

export function sideFigures(counts: ArrayLike<number>, offset: number): SideFigures {
  const requests = counts[offset + REQUESTS]!;
  const errors = counts[offset + ERRORS]!;
  return {
    requests,
    errors,
    error_rate: requests > 0 ? errors / requests : 0,
    slow_rate: requests > 0 ? counts[offset + SLOW]! / requests : 0,
    p99_ms: Math.round(quantileMs(counts, offset, 0.99) * 10) / 10,
  };
}
