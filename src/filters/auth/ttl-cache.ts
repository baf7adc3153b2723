/**
 * Answers of auth services kept for a while: bounded by entry count (least recently used dropped
 * first), each entry with its own expiry, and one call per key at a time — concurrent requests
 * with the same credential wait for the same answer instead of each asking.
 */
import { MemoryLru } from "../../cache/memory.ts";

interface Entry<V> {
  readonly size: 1;
  readonly value: V;
  readonly expiresAt: number;
}

export class TtlCache<V> {
  private readonly lru: MemoryLru<Entry<V>>;
  private readonly inflight = new Map<string, Promise<V>>();

  constructor(maxEntries: number, private readonly now: () => number = Date.now) {
    this.lru = new MemoryLru(maxEntries);
  }

  get(key: string): V | undefined {
    const entry = this.lru.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > this.now()) return entry.value;
    this.lru.delete(key);
    return undefined;
  }

  /** Keeps `value` for `ttlMs` (not at all when ≤ 0). */
  set(key: string, value: V, ttlMs: number): void {
    if (ttlMs > 0) this.lru.set(key, { size: 1, value, expiresAt: this.now() + ttlMs });
  }

  /** The cached value, or `load()`'s, shared by every caller asking for `key` meanwhile; kept for `ttl(value)` ms. */
  async load(key: string, load: () => Promise<V>, ttl: (value: V) => number): Promise<V> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const loading = load().then((value) => {
      this.set(key, value, ttl(value));
      return value;
    });
    this.inflight.set(key, loading);
    try {
      return await loading;
    } finally {
      this.inflight.delete(key);
    }
  }
}
