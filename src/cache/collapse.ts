/**
 * Collapsed forwarding: of concurrent misses for one key, one (the leader) goes upstream; the
 * others wait until its answer is stored and are served from the cache, or go upstream themselves
 * after `wait`, or as soon as the answer turns out not to be storable. In one process the
 * followers wait on a promise; across worker processes on the same file a lease row elects the
 * leader and the others poll for the entry. A crashed leader's lease expires.
 */
import { wallSeconds } from "../util/clock.ts";
import type { Store } from "../store/client.ts";
import type { Broadcast } from "./broadcast.ts";

export interface Leadership {
  /** This request goes upstream; call `release` once its answer is stored or known unstorable. */
  lead: boolean;
  /**
   * A follower of a leader in another process: this request polls the file for the entry, and
   * the other followers in this process wait for it; it calls `release` when done waiting.
   */
  remote: boolean;
  release(): void;
}

/** A leader in this process: followers wait for `done`, or read its answer as it arrives (`answer`). */
interface LocalLead {
  done: Promise<void>;
  resolve: () => void;
  answer: Promise<Broadcast | undefined>;
  publish: (answer: Broadcast | undefined) => void;
}

const OWNER = `${process.pid}-${crypto.randomUUID()}`;

export class Collapser {
  /** Keys led from this process → resolves when the leader releases. */
  private readonly local = new Map<string, LocalLead>();

  constructor(private readonly store: () => Promise<Store>) {}

  /** Leader or follower for `key`. A follower should then `wait` and look the key up again. */
  async acquire(key: string, leaseSeconds: number): Promise<Leadership> {
    if (this.local.has(key)) return { lead: false, remote: false, release() {} };
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    let publish!: (answer: Broadcast | undefined) => void;
    const answer = new Promise<Broadcast | undefined>((r) => (publish = r));
    this.local.set(key, { done, resolve, answer, publish });
    let leased = false;
    try {
      const store = await this.store();
      const now = wallSeconds();
      const r = await store.execute(
        `INSERT INTO leases (lease_key, owner, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (lease_key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at WHERE leases.expires_at < ?`,
        [key, OWNER, now + leaseSeconds, now],
      );
      leased = r.rowsAffected === 1;
    } catch {
      leased = true; // the file is unavailable: lead within this process only
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.local.delete(key);
      publish(undefined); // no-op when the answer was published
      resolve();
      if (leased) void this.store().then((s) => s.execute("DELETE FROM leases WHERE lease_key = ? AND owner = ?", [key, OWNER])).catch(() => {});
    };
    // Not leased: another worker leads; this request watches the file for the whole process.
    return { lead: leased, remote: !leased, release };
  }

  /** The leader of `key` (in this process) shares its answer as it arrives; undefined: it will not. */
  publish(key: string, answer: Broadcast | undefined): void {
    this.local.get(key)?.publish(answer);
  }

  /** The answer of this process's leader of `key`, as it arrives (undefined when it is not shared, or after `maxMs`). */
  async sharedAnswer(key: string, maxMs: number): Promise<Broadcast | undefined> {
    const local = this.local.get(key);
    if (local === undefined) return undefined;
    let timer: Timer | undefined;
    const answer = await Promise.race([local.answer, new Promise<undefined>((r) => (timer = setTimeout(r, maxMs)))]);
    clearTimeout(timer);
    return answer;
  }

  /**
   * Waits until the leader of `key` has released (in this process), or — when another process
   * leads — until `ready()` says the entry is there, the lease is gone, or `maxMs` has passed.
   */
  async wait(key: string, maxMs: number, ready: () => Promise<boolean>, remote: boolean): Promise<void> {
    const deadline = performance.now() + maxMs;
    const local = this.local.get(key);
    if (!remote && local !== undefined) {
      let timer: Timer | undefined;
      await Promise.race([local.done, new Promise<void>((r) => (timer = setTimeout(r, maxMs)))]);
      clearTimeout(timer);
      return;
    }
    const store = await this.store();
    while (performance.now() < deadline) {
      if (await ready()) return;
      const lease = await store.execute("SELECT expires_at FROM leases WHERE lease_key = ?", [key]);
      if (lease.rows.length === 0 || Number(lease.rows[0]!.expires_at) < wallSeconds()) return;
      await Bun.sleep(20);
    }
  }
}
