/**
 * Retry policy (Envoy's model): what may be retried, how long to wait, and the cluster-wide
 * budget that keeps a failing cluster from being hammered into a retry storm. Pure: the
 * pipeline asks, this answers.
 */
import { z } from "zod";
import { DurationSchema, SizeSchema } from "../config/primitives.ts";
import type { SwitchyardError } from "./errors.ts";

export const RETRY_ON = ["5xx", "gateway-error", "reset", "connect-failure", "retriable-status-codes", "429"] as const;
export type RetryOn = (typeof RETRY_ON)[number];

export const RetryPolicySchema = z.strictObject({
  /** Tries in total, the first included (2 = one retry). Default 2. */
  attempts: z.number().int().min(1).max(10).default(2),
  /**
   * What is retried: `connect-failure` (refused, connect timeout, failed TLS handshake), `reset` (connection reset),
   * `gateway-error` (502/503/504 answers and the failures above, and per-try timeouts), `5xx`
   * (any 5xx answer or failure), `retriable-status-codes` (the list below), `429` (Retry-After
   * honoured). Default [connect-failure, reset, gateway-error].
   */
  retry_on: z.array(z.enum(RETRY_ON)).min(1).default(["connect-failure", "reset", "gateway-error"]),
  /** Statuses retried with `retriable-status-codes`. */
  retriable_status_codes: z.array(z.number().int().min(100).max(599)).default([]),
  /** Time allowed for one try, within the route's request timeout; `0` = only the route's. Default 0. */
  per_try_timeout: DurationSchema.prefault("0"),
  /** Exponential backoff with full jitter between tries: random(0, min(max, base·2^n)). Defaults 25ms and 250ms. */
  backoff: z.strictObject({ base: DurationSchema.prefault("25ms"), max: DurationSchema.prefault("250ms") }).prefault({}),
  /** The longest Retry-After (429, 503) that is waited for; a longer one is passed to the client instead. Default 1s. */
  retry_after_max: DurationSchema.prefault("1s"),
  /** Hedging: when a try has not answered after this long, a second try goes to another endpoint and the first good answer wins. `0` = off. Default 0. */
  hedge_after: DurationSchema.prefault("0"),
  /** Retry POST, PATCH and other non-idempotent methods too. Default false. */
  non_idempotent: z.boolean().default(false),
  /** Request bodies up to this size are kept so that they can be sent again; larger ones are never retried. Default 64KiB. */
  buffer_body: SizeSchema.prefault("64KiB"),
});

export type RetryPolicy = z.infer<typeof RetryPolicySchema>;

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

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

export function methodRetryable(policy: RetryPolicy, method: string): boolean {
  return policy.non_idempotent || IDEMPOTENT.has(method);
}

// A failed TLS handshake is one too: nothing was sent (another endpoint may have a good certificate).
const CONNECT_FAILURES = new Set(["upstream_connect_refused", "upstream_connect_timeout", "upstream_tls_error"]);
const TIMEOUTS = new Set(["upstream_timeout", "idle_timeout", "upstream_connect_timeout"]);

/** Does the policy retry this failed try (an error before any response)? */
export function retriesError(policy: RetryPolicy, error: SwitchyardError): boolean {
  if (error.source !== "upstream") return false;
  for (const on of policy.retry_on) {
    if (on === "connect-failure" && CONNECT_FAILURES.has(error.code)) return true;
    if (on === "reset" && error.code === "upstream_reset") return true;
    if (on === "gateway-error" && (CONNECT_FAILURES.has(error.code) || TIMEOUTS.has(error.code) || error.code === "upstream_reset" || error.status === 502 || error.status === 503 || error.status === 504)) return true;
    if (on === "5xx" && error.status >= 500) return true;
  }
  return false;
}

/** Does the policy retry this answer? */
export function retriesStatus(policy: RetryPolicy, status: number): boolean {
  for (const on of policy.retry_on) {
    if (on === "5xx" && status >= 500 && status <= 599) return true;
    if (on === "gateway-error" && (status === 502 || status === 503 || status === 504)) return true;
    if (on === "retriable-status-codes" && policy.retriable_status_codes.includes(status)) return true;
    if (on === "429" && status === 429) return true;
  }
  return false;
}

/** Full-jitter backoff before retry number `retry` (1 for the first retry). */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.backoff.max, policy.backoff.base * 2 ** (retry - 1));
  return Math.floor(random() * cap);
}

/** Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, in ms from `now`; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

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
