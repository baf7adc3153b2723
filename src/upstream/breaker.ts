/**
 * The error-rate circuit breaker of one cluster. Closed: outcomes are counted in a sliding window
 * of ten buckets; when enough requests fail, it opens. Open: every request is refused at once,
 * without touching the upstream. After `open_for`, half-open: a few probes go through; all good
 * closes it, any failure opens it again. Pure apart from its clock.
 */
import type { BreakerConfig } from "./limits-schema.ts";

export type BreakerState = "closed" | "open" | "half_open";

const BUCKETS = 10;

export class CircuitBreaker {
  state: BreakerState = "closed";
  private openedAt = 0;
  private probesSent = 0;
  private probesPassed = 0;
  private readonly total = new Array<number>(BUCKETS).fill(0);
  private readonly failed = new Array<number>(BUCKETS).fill(0);
  private bucketAt = 0;

  constructor(
    private readonly config: BreakerConfig,
    private readonly now: () => number = () => performance.now(),
    private readonly onOpen: () => void = () => {},
  ) {}

  /** May a request go upstream? "probe" when it is one of the half-open probes (its outcome decides). */
  admit(): "yes" | "probe" | "no" {
    if (this.state === "open") {
      if (this.now() - this.openedAt < this.config.open_for) return "no";
      this.state = "half_open";
      this.probesSent = this.probesPassed = 0;
    }
    if (this.state === "half_open") {
      if (this.probesSent >= this.config.half_open_probes) return "no";
      this.probesSent++;
      return "probe";
    }
    return "yes";
  }

  record(failure: boolean, probe: boolean): void {
    if (probe && this.state === "half_open") {
      if (failure) return this.open();
      if (++this.probesPassed >= this.config.half_open_probes) this.close();
      return;
    }
    if (this.state !== "closed") return;
    const i = this.rotate();
    this.total[i]!++;
    if (failure) this.failed[i]!++;
    const total = this.total.reduce((a, b) => a + b, 0);
    if (total < this.config.minimum_requests) return;
    const failed = this.failed.reduce((a, b) => a + b, 0);
    if ((failed / total) * 100 >= this.config.failure_percent) this.open();
  }

  /** Advances the window to now, emptying buckets that fell out of it; returns the current bucket. */
  private rotate(): number {
    const width = this.config.window / BUCKETS;
    const bucket = Math.floor(this.now() / width);
    const stale = Math.min(BUCKETS, bucket - this.bucketAt);
    for (let k = 1; k <= stale; k++) {
      const j = (this.bucketAt + k) % BUCKETS;
      this.total[j] = this.failed[j] = 0;
    }
    this.bucketAt = bucket;
    return bucket % BUCKETS;
  }

  private open(): void {
    this.onOpen();
    this.state = "open";
    this.openedAt = this.now();
  }

  private close(): void {
    this.state = "closed";
    this.total.fill(0);
    this.failed.fill(0);
  }
}
