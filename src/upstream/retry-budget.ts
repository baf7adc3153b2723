import type { RetryBudgetConfig } from "./limits-schema.ts";

/**
 * Envoy's retry budget for one cluster: retries in flight ≤ max(min_concurrency, percent of
 * requests in flight). Counters are per process.
 */
export class RetryBudget {
  active = 0;
  retrying = 0;

  constructor(private readonly config: RetryBudgetConfig) {}

  allows(): boolean {
    return this.retrying < Math.max(this.config.min_concurrency, (this.active * this.config.percent) / 100);
  }
}

