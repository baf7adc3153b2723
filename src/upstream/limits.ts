/**
 * A cluster's resource limits (Envoy's circuit-breaker thresholds), per process: requests in
 * flight, upstream exchanges in flight with a bounded queue of waiters, retries in flight.
 */
import { Semaphore } from "../util/semaphore.ts";
import type { LimitsConfig } from "./limits-schema.ts";

export class ClusterLimits {
  requests = 0;
  /** max_connections: exchanges in flight, and those waiting for one (max_pending). */
  private readonly slots: Semaphore;

  constructor(readonly config: LimitsConfig) {
    this.slots = new Semaphore(config.max_connections, config.max_pending);
  }

  /** Counts a request in; false when max_requests is reached. */
  admitRequest(): boolean {
    if (this.requests >= this.config.max_requests) return false;
    this.requests++;
    return true;
  }

  releaseRequest(): void {
    this.requests--;
  }

  /** Exchanges in flight (holding a connection slot). */
  get connections(): number {
    return this.slots.held;
  }

  /** Takes a free connection slot if there is one (never waits). */
  tryAcquireConnection(): boolean {
    return this.slots.tryAcquire();
  }

  /**
   * A free connection slot, or one when an exchange ends; false when max_pending requests already
   * wait, or `giveUpSignal` (the client left, the route's time ran out) fires first.
   */
  acquireConnection(giveUpSignal?: () => AbortSignal): boolean | Promise<boolean> {
    return this.slots.acquire(giveUpSignal);
  }

  releaseConnection(): void {
    this.slots.release();
  }

  get pending(): number {
    return this.slots.pending;
  }
}
