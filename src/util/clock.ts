/** Wall-clock seconds since the epoch, as the cache, collapse leases and idempotency records store time. */
export const wallSeconds = (): number => Date.now() / 1000;

/** Monotonic milliseconds (performance.now()); injectable so timing logic (buckets, breakers) is tested without waiting. */
export type Clock = () => number;

export const monotonicMs: Clock = () => performance.now();
