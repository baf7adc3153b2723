/**
 * The IETF RateLimit header fields, draft-ietf-httpapi-ratelimit-headers-11 (May 2026): both are
 * Structured Field Lists (RFC 9651) of items named by a quoted policy name —
 *   RateLimit-Policy: "per-ip";q=60;w=60        (§3: quota q per window w seconds)
 *   RateLimit: "per-ip";r=42;t=18              (§4: r units available now; t = effective window)
 * Our t is the seconds until the bucket is full again, and on a limited response the seconds
 * until the next request is allowed — equal to Retry-After, which §6 says must not point before
 * the end of the effective window. Names are config names ([A-Za-z0-9_.-]): nothing to escape.
 * The RateLimit-Policy items are built with each tier (limiter.ts).
 */
import type { Verdict } from "./gcra.ts";

/** Whole seconds, rounded up — but not for float noise (20000.000000004 ms is 20 s). */
const seconds = (ms: number) => Math.ceil(ms / 1000 - 1e-6);

/** One limit's RateLimit item for a verdict. */
export function serviceLimitItem(limit: string, verdict: Verdict): string {
  const t = seconds(verdict.allowed ? verdict.resetMs : verdict.retryMs);
  return `"${limit}";r=${Math.max(0, verdict.remaining)};t=${Math.max(0, t)}`;
}

/** Retry-After (RFC 9110 §10.2.3) in whole seconds, at least 1. */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, seconds(ms));
}
