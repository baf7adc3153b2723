/** A route's `retry` policy and a cluster's `retry_budget` (proxy/retry.ts applies them). */
import { z } from "zod";
import { DurationSchema, SizeSchema } from "../config/primitives.ts";

/** The gRPC status values (Envoy's `retry-on` names): native gRPC calls whose trailers-only answer has that status. */
export const GRPC_RETRY_ON = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"] as const;

export const RETRY_ON = ["5xx", "gateway-error", "reset", "connect-failure", "retriable-status-codes", "429", ...GRPC_RETRY_ON] as const;

export type RetryOn = (typeof RETRY_ON)[number];

export const RetryPolicySchema = z.strictObject({
  /** Tries in total, the first included (2 = one retry). Default 2. */
  attempts: z.number().int().min(1).max(10).default(2),
  /**
   * What is retried: `connect-failure` (refused, connect timeout, failed TLS handshake), `reset` (connection reset),
   * `gateway-error` (502/503/504 answers and the failures above, and per-try timeouts), `5xx`
   * (any 5xx answer or failure), `retriable-status-codes` (the list below), `429` (Retry-After
   * honoured); for native gRPC calls also `cancelled`, `deadline-exceeded`, `internal`,
   * `resource-exhausted`, `unavailable` (a trailers-only answer with that grpc-status; gRPC calls
   * are retried whatever `non_idempotent` says, as Envoy does). Default [connect-failure, reset, gateway-error].
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

