/**
 * The token bucket as GCRA (the generic cell rate algorithm, ITU-T I.371): a bucket is one number,
 * its "theoretical arrival time" (TAT). A request is allowed when TAT + one emission interval is no
 * further ahead of now than the burst tolerance; an absent or past TAT is a full bucket. One number
 * per key keeps memory small, and the same arithmetic runs in Redis (redis-buckets.ts).
 */

/** One tier's bucket shape, in milliseconds. */
export interface BucketShape {
  /** Time one request's token takes to come back: window / count. */
  readonly emissionMs: number;
  /** emissionMs × burst: how far ahead of now the TAT may run. */
  readonly toleranceMs: number;
}

export interface Verdict {
  readonly allowed: boolean;
  /** Requests that could still be made at once (0 when limited). */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /** When limited: milliseconds until one request will be allowed (0 when allowed). */
  readonly retryMs: number;
}

export function shapeOf(count: number, windowSeconds: number, burst: number): BucketShape {
  const emissionMs = (windowSeconds * 1000) / count;
  return { emissionMs, toleranceMs: emissionMs * burst };
}

/**
 * Slack for float rounding: with burst 1, `now + e − e·1` may land one ulp above now and refuse a
 * request that is exactly on time.
 */
const EPSILON_MS = 1e-6;

/** Decides one request. `tat` is the stored TAT (undefined when none); returns the TAT to store when allowed. */
export function gcra(tat: number | undefined, now: number, shape: BucketShape): Verdict & { tat: number } {
  const base = tat === undefined || tat < now ? now : tat;
  const next = base + shape.emissionMs;
  const allowAt = next - shape.toleranceMs;
  if (allowAt - now > EPSILON_MS) return { allowed: false, remaining: 0, resetMs: base - now, retryMs: allowAt - now, tat: base };
  return { allowed: true, remaining: Math.max(0, Math.floor((now - allowAt) / shape.emissionMs + 1e-9)), resetMs: next - now, retryMs: 0, tat: next };
}
