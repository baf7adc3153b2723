/**
 * Retry policy (Envoy's model): what may be retried, how long to wait, and the cluster-wide
 * budget that keeps a failing cluster from being hammered into a retry storm. Pure: the
 * pipeline asks, this answers.
 */
import type { SwitchyardError } from "../util/errors.ts";
import type { RetryPolicy } from "./retry-schema.ts";

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

/** gRPC status codes by their `retry_on` names (proxy/grpc). */
const GRPC_RETRY_CODES: Readonly<Record<string, number>> = { cancelled: 1, "deadline-exceeded": 4, "resource-exhausted": 8, internal: 13, unavailable: 14 };

/** Does the policy retry a native gRPC call answered (trailers-only) with this grpc-status? */
export function retriesGrpcStatus(policy: RetryPolicy, code: number): boolean {
  for (const on of policy.retry_on) if (GRPC_RETRY_CODES[on] === code) return true;
  return false;
}

/** Full-jitter backoff before retry number `retry` (1 for the first retry). */
export function backoffDelay(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const cap = Math.min(policy.backoff.max, policy.backoff.base * 2 ** (retry - 1));
  return Math.floor(random() * cap);
}

