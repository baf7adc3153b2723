/**
 * Passive outlier detection on real traffic (Envoy's): consecutive 5xx, consecutive gateway
 * failures, and a success rate per interval eject an endpoint for base_ejection_time × times
 * ejected, never more than max_ejection_percent of the cluster at once (one always may be).
 */
import type { OutlierConfig } from "./schema.ts";
import type { HealthState } from "./state.ts";

/** What one try came to, for the detector. */
export type TryOutcome = { status: number } | { gatewayFailure: true };

export interface Detected {
  readonly health: HealthState;
}

export class OutlierDetector {
  private timer: Timer | undefined;

  constructor(
    private readonly endpoints: readonly Detected[],
    private readonly config: OutlierConfig,
    private readonly onChange: () => void,
    private readonly now: () => number = () => performance.now(),
    private readonly onEject: () => void = () => {},
  ) {
    // The interval closes success-rate windows and lets ejections expire on time.
    this.timer = setInterval(() => this.review(), config.interval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  report(endpoint: Detected, outcome: TryOutcome): void {
    const h = endpoint.health;
    const gateway = "gatewayFailure" in outcome || outcome.status === 502 || outcome.status === 503 || outcome.status === 504;
    const failed = gateway || ("status" in outcome && outcome.status >= 500);
    h.windowRequests++;
    if (failed) h.windowFailures++;
    h.consecutive5xx = failed ? h.consecutive5xx + 1 : 0;
    h.consecutiveGatewayFailures = gateway ? h.consecutiveGatewayFailures + 1 : 0;
    const c = this.config;
    if ((c.consecutive_5xx > 0 && h.consecutive5xx >= c.consecutive_5xx) || (c.consecutive_gateway_failure > 0 && h.consecutiveGatewayFailures >= c.consecutive_gateway_failure)) {
      this.eject(endpoint);
    }
  }

  /** Closes the success-rate window; ejects the endpoints below the threshold; lets expired ejections go. */
  review(): void {
    const sr = this.config.success_rate;
    const now = this.now();
    let changed = false;
    for (const e of this.endpoints) {
      const h = e.health;
      if (h.ejectedUntil !== 0 && h.ejectedUntil <= now) {
        h.ejectedUntil = 0;
        changed = true;
      }
      if (sr && h.windowRequests >= sr.minimum_requests && ((h.windowRequests - h.windowFailures) / h.windowRequests) * 100 < sr.threshold) {
        changed = this.eject(e) || changed;
      }
      h.windowRequests = h.windowFailures = 0;
    }
    if (changed) this.onChange();
  }

  private eject(endpoint: Detected): boolean {
    const h = endpoint.health;
    const now = this.now();
    if (h.ejectedUntil > now) return false;
    const ejected = this.endpoints.filter((e) => e.health.ejectedUntil > now).length;
    if (ejected > 0 && ((ejected + 1) / this.endpoints.length) * 100 > this.config.max_ejection_percent) return false;
    h.ejections++;
    h.ejectedUntil = now + Math.min(this.config.max_ejection_time, this.config.base_ejection_time * h.ejections);
    h.consecutive5xx = h.consecutiveGatewayFailures = 0;
    this.onEject();
    this.onChange();
    return true;
  }
}
