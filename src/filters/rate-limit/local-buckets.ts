/**
 * Token buckets in this process's memory, bounded: one number (the GCRA TAT) per key, kept in
 * least-recently-used order. A bucket whose TAT has passed is full, so dropping it changes
 * nothing; each take drops such idle buckets from the old end, and past `maxKeys` the least
 * recently used bucket goes even if it was not full (counted: a flood of distinct keys costs the
 * oldest keys their history, never unbounded memory).
 *
 * The recency list is a doubly linked list over typed arrays, not a Map's insertion order: JSC's
 * Map leaves deleted entries at its front until it rehashes, and peeking at the oldest entry after
 * many deletions measured 11–22 µs instead of well under one.
 */
import { type Clock, monotonicMs } from "../../util/clock.ts";
import { type BucketShape, gcra, type Verdict } from "./gcra.ts";
import { registry } from "../../observe/metrics.ts";
import { Gauge } from "../../observe/registry.ts";

/** Every store of this process in use, for the bucket-count gauge (weak, in case one is dropped without dispose). */
const stores = new Set<WeakRef<LocalBuckets>>();

/** Idle buckets examined (from the old end) per take: amortised cleanup without a timer per store. */
const SWEEP_PER_TAKE = 2;
/** How often every store drops its full buckets, so an idle process gives the memory back. */
const PURGE_EVERY_MS = 60_000;
let purgeTimer: Timer | undefined;

export function liveStores(): LocalBuckets[] {
  const out: LocalBuckets[] = [];
  for (const ref of stores) {
    const store = ref.deref();
    if (store === undefined) stores.delete(ref);
    else out.push(store);
  }
  return out;
}

// Registered where the stores live, so every process that has them reports them (with workers,
// the supervisor holds the local ones and is the one that answers /metrics for them).
registry.add(new Gauge("switchyard_rate_limit_buckets", "Rate-limit buckets tracked in memory, by limit (with workers, the supervisor holds the local ones).", ["limit"], (set) => {
  const byLimit = new Map<string, number>();
  for (const store of liveStores()) byLimit.set(store.name, (byLimit.get(store.name) ?? 0) + store.size);
  for (const [limit, n] of byLimit) set([limit], n);
}));

const NONE = -1;
const INITIAL_SLOTS = 1024;

export class LocalBuckets {
  /** key → slot; a slot holds the key, its TAT and its neighbours in recency order. */
  private readonly index = new Map<string, number>();
  private keys: (string | undefined)[] = [];
  private tats = new Float64Array(0);
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  /** Least and most recently used slots. */
  private oldest = NONE;
  private newest = NONE;
  /** Slots given back, reused before the arrays grow. */
  private readonly free: number[] = [];
  private readonly ref = new WeakRef(this);

  constructor(
    /** The limit's name (metrics). */
    readonly name: string,
    private readonly maxKeys: number,
    /** Called for each bucket dropped before it was full (max_keys reached). */
    private readonly onEvict: () => void = () => {},
    private readonly now: Clock = monotonicMs,
  ) {
    stores.add(this.ref);
    purgeTimer ??= setInterval(() => {
      for (const store of liveStores()) store.purgeIdle();
    }, PURGE_EVERY_MS);
    purgeTimer.unref();
  }

  get size(): number {
    return this.index.size;
  }

  take(key: string, shape: BucketShape): Verdict {
    const now = this.now();
    let slot = this.index.get(key);
    const verdict = gcra(slot === undefined ? undefined : this.tats[slot], now, shape);
    if (slot !== undefined) {
      this.unlink(slot);
    } else if (verdict.allowed) {
      slot = this.allocate(key, now);
    }
    if (slot !== undefined) {
      this.tats[slot] = verdict.tat;
      this.linkNewest(slot);
    }
    // Amortised cleanup: the oldest buckets, if full again, go.
    for (let i = 0; i < SWEEP_PER_TAKE && this.oldest !== NONE && this.oldest !== slot && this.tats[this.oldest]! <= now; i++) this.remove(this.oldest);
    return verdict;
  }

  /** No longer in use (its limit was removed or changed): out of the gauge, memory let go. */
  dispose(): void {
    stores.delete(this.ref);
    this.index.clear();
    this.keys = [];
    this.tats = new Float64Array(0);
    this.prev = new Int32Array(0);
    this.next = new Int32Array(0);
    this.oldest = this.newest = NONE;
    this.free.length = 0;
  }

  /** Drops every full bucket (a periodic pass; `take` only looks at the oldest few). */
  purgeIdle(): void {
    const now = this.now();
    for (let slot = this.oldest; slot !== NONE; ) {
      const after = this.next[slot]!;
      if (this.tats[slot]! <= now) this.remove(slot);
      slot = after;
    }
  }

  /** A slot for a new key: a free one, new room, or the least recently used bucket's. */
  private allocate(key: string, now: number): number {
    let slot = this.free.pop();
    if (slot === undefined && this.index.size >= this.maxKeys) {
      slot = this.oldest;
      if (this.tats[slot]! > now) this.onEvict();
      this.remove(slot);
      this.free.pop();
    }
    if (slot === undefined) {
      slot = this.index.size;
      if (slot >= this.tats.length) this.grow();
    }
    this.keys[slot] = key;
    this.index.set(key, slot);
    return slot;
  }

  private grow(): void {
    const size = Math.min(this.maxKeys, Math.max(INITIAL_SLOTS, this.tats.length * 2));
    const resize = <A extends Float64Array | Int32Array>(old: A, make: (n: number) => A): A => {
      const bigger = make(size);
      bigger.set(old);
      return bigger;
    };
    this.tats = resize(this.tats, (n) => new Float64Array(n));
    this.prev = resize(this.prev, (n) => new Int32Array(n));
    this.next = resize(this.next, (n) => new Int32Array(n));
  }

  private remove(slot: number): void {
    this.unlink(slot);
    this.index.delete(this.keys[slot]!);
    this.keys[slot] = undefined;
    this.free.push(slot);
  }

  private unlink(slot: number): void {
    const before = this.prev[slot]!;
    const after = this.next[slot]!;
    if (before === NONE) this.oldest = after;
    else this.next[before] = after;
    if (after === NONE) this.newest = before;
    else this.prev[after] = before;
  }

  private linkNewest(slot: number): void {
    this.prev[slot] = this.newest;
    this.next[slot] = NONE;
    if (this.newest === NONE) this.oldest = slot;
    else this.next[this.newest] = slot;
    this.newest = slot;
  }
}
