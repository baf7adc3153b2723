import { z } from "zod";
import { DurationSchema, PositiveDurationSchema } from "../config/primitives.ts";

/** Envoy's circuit-breaker thresholds: per cluster, per process. Over a limit, requests fail fast with 503. */
export const LimitsSchema = z.strictObject({
  /** Upstream exchanges in flight (a proxy for open sockets). Default 1024. */
  max_connections: z.number().int().min(1).default(1024),
  /** Requests waiting for a connection slot when max_connections is reached. Default 1024; 0 = none wait. */
  max_pending: z.number().int().min(0).default(1024),
  /**
   * Exchanges waiting for one endpoint's answer at once, per process; more wait their turn (at most
   * max_pending, within the request's time). Bun's fetch keeps 64 idle sockets per process: with
   * more answers awaited at once, sockets are closed as they come back and new ones opened (13,256
   * connections in 5 s at 256 clients against 22 with this at 64, measured). The slot is held until
   * the answer's head arrives: a stream (SSE, a download) does not keep it, a request whose body
   * still streams up is not counted. Raise it for long-polling upstreams. Default 64; 0 = no cap.
   */
  endpoint_in_flight: z.number().int().min(0).default(64),
  /** Requests in flight to the cluster, waiting or not. Default 1024. */
  max_requests: z.number().int().min(1).default(1024),
  /**
   * Retries in flight, an absolute cap on top of the cluster's retry_budget (which is what limits
   * retries by default, as in Envoy when a budget is set). Default 1024, like the other limits.
   */
  max_retries: z.number().int().min(0).default(1024),
});

/** Error-rate circuit breaker: closed → open → half-open → closed (or open again). */
export const BreakerSchema = z.strictObject({
  /** Failure percentage (5xx answers and gateway failures) over the window that opens the breaker. Default 50. */
  failure_percent: z.number().min(1).max(100).default(50),
  /** The sliding window the percentage is measured over. Default 10s. */
  window: PositiveDurationSchema.prefault("10s"),
  /** No opening before this many requests in the window. Default 20. */
  minimum_requests: z.number().int().min(1).default(20),
  /** How long the breaker stays open before letting probes through. Default 30s. */
  open_for: DurationSchema.prefault("30s"),
  /** Probes let through half-open; all must succeed to close it. Default 3. */
  half_open_probes: z.number().int().min(1).default(3),
});

export type LimitsConfig = z.infer<typeof LimitsSchema>;
export type BreakerConfig = z.infer<typeof BreakerSchema>;

export const RetryBudgetSchema = z.strictObject({
  /** Retries in flight may be at most this percentage of the cluster's requests in flight. Default 20. */
  percent: z.number().min(0).max(100).default(20),
  /**
   * …but this many are always allowed. Default 10 (Linkerd's minimum of 10 retries; Envoy's 3 let
   * the burst of one endpoint of three resetting at 20 concurrent clients fail requests).
   */
  min_concurrency: z.number().int().min(0).default(10),
});

export type RetryBudgetConfig = z.infer<typeof RetryBudgetSchema>;
