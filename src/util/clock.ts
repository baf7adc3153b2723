/** Wall-clock seconds since the epoch, as the cache, collapse leases and idempotency records store time. */
export const wallSeconds = (): number => Date.now() / 1000;
