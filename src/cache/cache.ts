/**
 * One named HTTP cache on its libSQL file (via src/store): lookup by key and Vary, store while
 * the body streams to the client, header updates after revalidation, invalidation and purge,
 * LRU eviction by total size, a memory tier in front. The only cache module that touches the store.
 */
import { wallSeconds } from "../util/clock.ts";
import { metrics } from "../observe/metrics.ts";
import { sharedStore, type Store } from "../store/client.ts";
import { varyMatches } from "./policy.ts";
import { Collapser } from "./collapse.ts";
import { Generations } from "./generations.ts";
import { MemoryLru } from "./memory.ts";
import type { CacheConfig, RouteCacheConfig } from "./schema.ts";
import type { KeyFacts } from "./key.ts";
import { keepWhilePassing } from "../util/keep-while-passing.ts";

export interface Entry {
  readonly id: number;
  readonly key: string;
  readonly varyKey: string;
  readonly status: number;
  headers: Headers;
  readonly requestHeaders: Headers;
  requestTime: number;
  responseTime: number;
  readonly size: number;
  lastUsed: number;
}

/**
 * What the memory tier keeps of one key: its variants, the bodies of the small ones, and the
 * shared change counters they were read under (generations.ts).
 */
interface Cached {
  entries: Entry[];
  bodies: Map<number, Uint8Array>;
  /** The key's slot among the shared change counters. */
  slot: number;
  keyCount: number;
  wideCount: number;
  size: number;
}

/** Fills take at most this long (collapse leases, request timeouts are far shorter): older invalidation records are pruned. */
const INVALIDATION_MEMORY_S = 3600;

/** The URL part of a cache key (keys may end in configured request headers, after a newline). */
export function baseKey(key: string): string {
  const nl = key.indexOf("\n");
  return nl === -1 ? key : key.slice(0, nl);
}

const CHUNK = 64 * 1024;


export interface StoreMeta {
  key: string;
  varyKey: string;
  status: number;
  headers: Headers;
  requestHeaders: Record<string, string>;
  requestTime: number;
  responseTime: number;
  tags: string[];
}

export interface RouteCache {
  readonly cache: HttpCache;
  readonly config: RouteCacheConfig;
  readonly key: (facts: KeyFacts) => string;
  /** Purges wherever the cache's entries may be served: this machine, and with a fleet every instance. */
  readonly purge: (by: PurgeBy) => Promise<PurgeOutcome>;
  /** False while stored entries must not be served (a fleet instance that may have missed purges). */
  readonly servable: () => boolean | Promise<boolean>;
}

/** What the cache phase decided for a request that goes upstream. */
export interface CacheState {
  readonly key: string;
  /** The stored variant, when there is one (revalidation, stale-if-error). */
  readonly stored?: { entry: Entry; body: Uint8Array };
  readonly requestTime: number;
  /** Held while this request leads a collapsed miss; released once its answer is stored (or cannot be). */
  collapseRelease?: () => void;
  /** The store took over releasing the collapse (it does so when the entry is written). */
  collapseDeferred?: boolean;
}

/** What a purge removes: one key (every variant and header suffix), every key with a prefix, or every entry with a tag. */
export interface PurgeBy {
  key?: string;
  prefix?: string;
  tag?: string;
}

/** How far a purge went beyond this machine (with a fleet): which live instances confirmed it. */
export interface FleetPurgeReport {
  /** Logged for the fleet (false: Redis could not take it; applied on this instance only). */
  published: boolean;
  /** Every live instance confirmed it within fleet.purge.ack_timeout. */
  complete: boolean;
  /** Instances (besides this one) that applied it. */
  confirmed: string[];
  /** Live instances that had not confirmed it in time (they apply it when they read the log). */
  missing: string[];
  /** Why the fleet was not reached (Redis down): it was applied on this machine only. */
  error?: string;
}

export interface PurgeOutcome {
  /** Entries removed on this machine. */
  purged: number;
  fleet?: FleetPurgeReport;
}

/** Where purges go and whether entries may be served, when this machine is not alone (a fleet). */
export interface CacheScope {
  purge(cache: HttpCache, by: PurgeBy): Promise<PurgeOutcome>;
  servable(cache: HttpCache): boolean | Promise<boolean>;
}

export class HttpCache {
  private readonly memory: MemoryLru<Cached>;
  readonly collapser: Collapser;
  private readonly generations: Generations;

  constructor(readonly name: string, readonly config: CacheConfig) {
    this.memory = new MemoryLru(config.memory.max_total);
    this.collapser = new Collapser(() => this.store);
    this.generations = new Generations(`${config.path}-generations`);
  }

  private get store(): Promise<Store> {
    return sharedStore(this.config.path);
  }

  /**
   * The stored variant of `key` whose selecting headers match `request`, with its body; complete
   * entries only. The memory tier answers without touching the file while the key's shared
   * change counters are as they were when it read it: a fill, refresh, invalidation or purge in
   * any process that shares the file is seen on the next lookup.
   */
  async lookup(key: string, request: Headers): Promise<{ entry: Entry; body: Uint8Array } | undefined> {
    const gens = this.generations;
    let memo = this.memory.get(key);
    const slot = memo?.slot ?? gens.slot(baseKey(key));
    let changed = false;
    if (memo === undefined || memo.keyCount !== gens.keyCount(slot) || memo.wideCount !== gens.wideCount()) {
      // Counted before the file is read: a change made while it is read shows next time.
      const keyCount = gens.keyCount(slot);
      const wideCount = gens.wideCount();
      const rows = await this.readEntries(key);
      if (rows.length === 0) {
        this.memory.delete(key);
        return undefined;
      }
      const bodies = new Map<number, Uint8Array>();
      for (const e of rows) {
        const kept = memo?.bodies.get(e.id);
        if (kept !== undefined) bodies.set(e.id, kept);
      }
      memo = { entries: rows, bodies, slot, keyCount, wideCount, size: 0 };
      changed = true;
    }
    let entry: Entry | undefined;
    for (const e of memo.entries) {
      if (varyMatches(e.headers.get("vary"), e.requestHeaders, request)) {
        entry = e;
        break;
      }
    }
    if (entry === undefined) return undefined;
    let body = memo.bodies.get(entry.id);
    if (body === undefined) {
      body = await this.readBody(await this.store, entry);
      // Replaced or evicted between the two reads (another worker, an eviction): not an answer.
      if (body.byteLength !== entry.size) {
        this.memory.delete(key);
        return undefined;
      }
      if (body.byteLength <= this.config.memory.max_object) memo.bodies.set(entry.id, body);
      changed = true;
    }
    // A hit on what the tier holds changes nothing of it (get() already made it most recent).
    if (changed) {
      let size = 512 * memo.entries.length;
      for (const b of memo.bodies.values()) size += b.byteLength;
      memo.size = size;
      this.memory.set(key, memo);
    }
    // Recency for LRU eviction, written at most once a minute per entry.
    const seconds = wallSeconds();
    if (seconds - entry.lastUsed > 60) {
      entry.lastUsed = seconds;
      void this.store.then((s) => s.execute("UPDATE cache_entries SET last_used = ? WHERE id = ?", [seconds, entry.id])).catch(() => {});
    }
    return { entry, body };
  }

  private async readEntries(key: string): Promise<Entry[]> {
    const store = await this.store;
    const rows = (await store.execute(
      "SELECT id, vary_key, status, headers, request_headers, request_time, response_time, body_size, last_used FROM cache_entries WHERE cache_key = ? AND complete = 1",
      [key],
    )).rows;
    return rows.map((r) => ({
      id: Number(r.id), key, varyKey: String(r.vary_key), status: Number(r.status),
      headers: new Headers(JSON.parse(String(r.headers)) as [string, string][]),
      requestHeaders: new Headers(JSON.parse(String(r.request_headers)) as Record<string, string>),
      requestTime: Number(r.request_time), responseTime: Number(r.response_time), size: Number(r.body_size), lastUsed: Number(r.last_used),
    }));
  }

  private async readBody(store: Store, entry: Entry): Promise<Uint8Array> {
    const rows = (await store.execute("SELECT data FROM cache_chunks WHERE entry_id = ? ORDER BY seq", [entry.id])).rows;
    const parts = rows.map((r) => new Uint8Array(r.data as ArrayBuffer));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /**
   * Passes `body` through to the client while keeping a copy, and stores the copy before the
   * client's stream ends: a request sent right after the answer arrived finds it stored (as a
   * client — or a conformance suite — expects; the store used to finish a moment after). A body
   * over max_object, or one that fails, is not stored; one the client stops reading is still read
   * and stored. Returns the client's stream.
   */
  storeWhileStreaming(meta: StoreMeta, body: ReadableStream<Uint8Array> | null, onSettled: () => void = () => {}): ReadableStream<Uint8Array> | null {
    if (body === null) {
      void this.write(meta, new Uint8Array(0)).catch(logStoreError).finally(onSettled);
      return null;
    }
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      onSettled();
    };
    // A client that leaves does not stop the fill: the requests collapsed behind it get it.
    return keepWhilePassing(body, this.config.max_object, {
      keep: async (bytes) => {
        if (bytes !== undefined) await this.write(meta, bytes).catch(logStoreError);
        settle();
      },
      failed: settle, // failed mid-body: nothing is stored
    }, true);
  }

  /**
   * Writes a whole entry in one transaction, replacing the same variant — unless an invalidation
   * or purge that matches it (its URL, a prefix of its key, one of its tags) was recorded, by any
   * process, at or after the time its request was sent: that answer may predate the change that
   * removed what it would put back. Then evicts down to max_total. True when stored.
   */
  async write(meta: StoreMeta, body: Uint8Array): Promise<boolean> {
    const store = await this.store;
    const now = wallSeconds();
    const pending = `${meta.varyKey}\u0000pending\u0000${crypto.randomUUID()}`;
    const inserted = await store.execute(
      `INSERT INTO cache_entries (cache_key, vary_key, status, headers, request_headers, request_time, response_time, body_size, complete, last_used)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) RETURNING id`,
      [meta.key, pending, meta.status, JSON.stringify([...meta.headers]), JSON.stringify(meta.requestHeaders), meta.requestTime, meta.responseTime, body.byteLength, now],
    );
    const id = Number(inserted.rows[0]!.id);
    const statements: { sql: string; args: (string | number | Uint8Array)[] }[] = [];
    for (let seq = 0, off = 0; off < body.byteLength || (seq === 0 && body.byteLength === 0); seq++, off += CHUNK) {
      statements.push({ sql: "INSERT INTO cache_chunks (entry_id, seq, data) VALUES (?, ?, ?)", args: [id, seq, body.subarray(off, off + CHUNK)] });
      if (body.byteLength === 0) break;
    }
    for (const tag of meta.tags) statements.push({ sql: "INSERT INTO cache_tags (entry_id, tag) VALUES (?, ?)", args: [id, tag] });
    const tagged = meta.tags.length === 0 ? "" : ` OR (kind = 'tag' AND value IN (${meta.tags.map(() => "?").join(",")}))`;
    const current = `NOT EXISTS (SELECT 1 FROM cache_invalidations WHERE at >= ? AND ((kind = 'key' AND value = ?) OR (kind = 'prefix' AND substr(?, 1, length(value)) = value)${tagged}))`;
    const guard = [meta.requestTime, baseKey(meta.key), meta.key, ...meta.tags];
    statements.push({ sql: `DELETE FROM cache_entries WHERE cache_key = ? AND vary_key = ? AND ${current}`, args: [meta.key, meta.varyKey, ...guard] });
    const completeAt = statements.length;
    statements.push({ sql: `UPDATE cache_entries SET vary_key = ?, complete = 1 WHERE id = ? AND ${current}`, args: [meta.varyKey, id, ...guard] });
    // An invalidated fill leaves nothing behind (its chunks and tags go with it).
    statements.push({ sql: "DELETE FROM cache_entries WHERE id = ? AND complete = 0", args: [id] });
    const results = await store.batch(statements);
    this.memory.delete(meta.key);
    if (results[completeAt]!.rowsAffected === 0) return false;
    this.generations.bump(this.generations.slot(baseKey(meta.key)));
    metrics.cacheStoredBytes.inc([this.name], body.byteLength);
    await this.evict(store);
    return true;
  }

  private async evict(store: Store): Promise<void> {
    const total = Number((await store.execute("SELECT coalesce(sum(body_size), 0) AS n FROM cache_entries")).rows[0]!.n);
    if (total <= this.config.max_total) return;
    let excess = total - this.config.max_total;
    const victims = (await store.execute("SELECT id, cache_key, vary_key, body_size FROM cache_entries ORDER BY last_used LIMIT 1000")).rows;
    const ids: number[] = [];
    for (const v of victims) {
      if (excess <= 0) break;
      ids.push(Number(v.id));
      excess -= Number(v.body_size);
      this.memory.delete(String(v.cache_key));
    }
    if (ids.length > 0) await store.execute(`DELETE FROM cache_entries WHERE id IN (${ids.map(() => "?").join(",")})`, ids);
  }

  /** After a 304: the stored headers and times are updated (RFC 9111 §4.3.4). */
  async refresh(entry: Entry, headers: Headers, requestTime: number, responseTime: number): Promise<void> {
    entry.headers = headers;
    entry.requestTime = requestTime;
    entry.responseTime = responseTime;
    this.memory.delete(entry.key);
    const store = await this.store;
    await store.execute("UPDATE cache_entries SET headers = ?, request_time = ?, response_time = ? WHERE id = ?", [JSON.stringify([...headers]), requestTime, responseTime, entry.id]);
    this.generations.bump(this.generations.slot(baseKey(entry.key)));
  }

  /**
   * Removes entries: by exact key (every variant and header suffix), by key prefix, or by tag, and
   * records the invalidation (fills requested before it are not stored, in any process). Once it
   * resolves, no process that shares the file serves what it removed. Returns how many.
   */
  async purge(by: PurgeBy): Promise<number> {
    const now = wallSeconds();
    let remove: { sql: string; args: string[] | (string | number)[] };
    let record: [string, string];
    if (by.key !== undefined) {
      remove = { sql: "DELETE FROM cache_entries WHERE cache_key = ? OR substr(cache_key, 1, ?) = ?", args: [by.key, by.key.length + 1, `${by.key}\n`] };
      record = ["key", by.key];
    } else if (by.prefix !== undefined) {
      remove = { sql: "DELETE FROM cache_entries WHERE substr(cache_key, 1, ?) = ?", args: [by.prefix.length, by.prefix] };
      record = ["prefix", by.prefix];
    } else if (by.tag !== undefined) {
      remove = { sql: "DELETE FROM cache_entries WHERE id IN (SELECT entry_id FROM cache_tags WHERE tag = ?)", args: [by.tag] };
      record = ["tag", by.tag];
    } else return 0;
    const store = await this.store;
    const [removed] = await store.batch([
      remove,
      { sql: "INSERT INTO cache_invalidations (kind, value, at) VALUES (?, ?, ?) ON CONFLICT (kind, value) DO UPDATE SET at = max(at, excluded.at)", args: [...record, now] },
      { sql: "DELETE FROM cache_invalidations WHERE at < ?", args: [now - INVALIDATION_MEMORY_S] },
    ]);
    // Every process's memory tier: the key's slot, or (prefix, tag) every key.
    if (by.key !== undefined) {
      this.generations.bump(this.generations.slot(by.key));
      this.memory.deleteWhere((k) => k === by.key || k.startsWith(`${by.key}\n`));
    } else {
      this.generations.bumpAll();
      this.memory.deleteWhere(by.prefix !== undefined ? (k) => k.startsWith(by.prefix!) : () => true);
    }
    return removed!.rowsAffected;
  }
}

function logStoreError(e: unknown): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "cache store failed", error: String(e) }));
}
