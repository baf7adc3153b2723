/**
 * Purges applied on this machine while Redis could not take them (down, hung): kept in order and
 * sent to the fleet's log once Redis answers again, so the other instances do not go on serving
 * what was purged here during the outage (an unsafe method's invalidation especially: its caller
 * cannot retry it). Per process and bounded: past `max`, one purge of everything per cache stands
 * in for the rest. A process that stops before Redis is back loses them (logged).
 */
import { metrics } from "../observe/metrics.ts";
import { logFleet } from "./redis.ts";

export interface PurgeRecord {
  cache: string;
  kind: "key" | "prefix" | "tag";
  value: string;
}

export class PendingPurges {
  private queue: PurgeRecord[] = [];
  private timer: Timer | undefined;
  private flushing = false;

  constructor(private readonly send: (purge: PurgeRecord) => Promise<void>, private readonly retryMs: number, private readonly max = 10_000) {}

  get size(): number {
    return this.queue.length;
  }

  add(purge: PurgeRecord): void {
    if (this.queue.length >= this.max) {
      const caches = new Set([...this.queue.map((p) => p.cache), purge.cache]);
      this.queue = [...caches].map((cache) => ({ cache, kind: "prefix", value: "" }));
      logFleet({ level: "warn", msg: "fleet: too many purges waiting for redis; each cache's are replaced by one purge of everything", caches: [...caches] });
    } else this.queue.push(purge);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.retryMs);
    this.timer.unref();
  }

  /** Sends what waits, in order, until Redis fails again (then later). */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        try {
          await this.send(this.queue[0]!);
        } catch {
          break;
        }
        this.queue.shift();
        metrics.fleetPurges.inc(["published_late"]);
      }
    } finally {
      this.flushing = false;
      this.schedule();
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    if (this.queue.length > 0) logFleet({ level: "error", msg: "fleet: purges applied here never reached the fleet (redis was unreachable until the end)", purges: this.queue.length });
  }
}
