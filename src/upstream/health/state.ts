/**
 * An endpoint's health, as the active checker and the outlier detector see it. Kept apart from the
 * endpoint's address so that a reload can carry it over to the same endpoint in the new config.
 */
export interface HealthState {
  /** Passes the active checks (true when there are none). */
  activeHealthy: boolean;
  checkPasses: number;
  checkFailures: number;
  /** Ejected by the outlier detector until this time (ms, monotonic); 0 = not ejected. */
  ejectedUntil: number;
  /** Times ejected so far (ejection time grows with it). */
  ejections: number;
  consecutive5xx: number;
  consecutiveGatewayFailures: number;
  windowRequests: number;
  windowFailures: number;
  /**
   * The last failed try (any try, with or without outlier detection): when (ms since the epoch,
   * 0 = never), its error code (`upstream_5xx` for an answer ≥ 500), and its message or status.
   * Plain fields, overwritten in place: recording a failure allocates nothing.
   */
  lastFailureAt: number;
  lastFailureCode: string;
  lastFailureMessage: string;
  lastFailureStatus: number;
}

export function freshHealth(): HealthState {
  return {
    activeHealthy: true, checkPasses: 0, checkFailures: 0, ejectedUntil: 0, ejections: 0,
    consecutive5xx: 0, consecutiveGatewayFailures: 0, windowRequests: 0, windowFailures: 0,
    lastFailureAt: 0, lastFailureCode: "", lastFailureMessage: "", lastFailureStatus: 0,
  };
}

export function isAvailable(h: HealthState, now: number): boolean {
  return h.activeHealthy && h.ejectedUntil <= now;
}
