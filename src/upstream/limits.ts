/**
 * A cluster's resource limits (Envoy's circuit-breaker thresholds), per process: requests in
 * flight, upstream exchanges in flight with a bounded queue of waiters, retries in flight.
 */
import type { LimitsConfig } from "./limits-schema.ts";

export class ClusterLimits {
  requests = 0;
  connections = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly config: LimitsConfig) {}

  /** Counts a request in; false when max_requests is reached. */
  admitRequest(): boolean {
    if (this.requests >= this.config.max_requests) return false;
    this.requests++;
    return true;
  }

  releaseRequest(): void {
    this.requests--;
  }

  /** Takes a free connection slot if there is one (never waits). */
  tryAcquireConnection(): boolean {
    if (this.connections >= this.config.max_connections) return false;
    this.connections++;
    return true;
  }

  /**
   * Takes a connection slot, waiting in line (up to max_pending) while all are busy. Resolves false
   * when the line is full, or when `signal` aborts while waiting.
   */
  acquireConnection(giveUpSignal?: () => AbortSignal): boolean | Promise<boolean> {
    if (this.tryAcquireConnection()) return true;
    if (this.waiting.length >= this.config.max_pending) return false;
    const signal = giveUpSignal?.(); // made only when waiting: the fast path allocates nothing
    if (signal?.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        signal?.removeEventListener("abort", giveUp);
        this.connections++;
        resolve(true);
      };
      const giveUp = () => {
        const i = this.waiting.indexOf(wake);
        if (i !== -1) this.waiting.splice(i, 1);
        resolve(false);
      };
      this.waiting.push(wake);
      signal?.addEventListener("abort", giveUp, { once: true });
    });
  }

  releaseConnection(): void {
    this.connections--;
    const next = this.waiting.shift();
    next?.();
  }

  get pending(): number {
    return this.waiting.length;
  }
}
