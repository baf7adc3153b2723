/** The retry policy's pure decisions. */
import { describe, expect, test } from "bun:test";
import { errors, SwitchyardError } from "../../src/util/errors.ts";
import { backoffDelay, methodRetryable, retriesError, retriesStatus } from "../../src/proxy/retry.ts";
import { RetryPolicySchema } from "../../src/proxy/retry-schema.ts";
import { RetryBudget } from "../../src/upstream/retry-budget.ts";
import { retryAfterMs } from "../../src/util/retry-after.ts";

const policy = (raw: Record<string, unknown> = {}) => RetryPolicySchema.parse(raw);
const refused = SwitchyardError.from(Object.assign(new Error("x"), { code: "ECONNREFUSED" }));
const reset = SwitchyardError.from(Object.assign(new Error("x"), { code: "ECONNRESET" }));

describe("what is retried", () => {
  test("connect-failure, reset and gateway-error by default; client-side failures never", () => {
    const p = policy();
    expect(retriesError(p, refused)).toBe(true);
    expect(retriesError(p, errors.connectTimeout())).toBe(true);
    expect(retriesError(p, reset)).toBe(true);
    expect(retriesError(p, errors.requestTimeout())).toBe(true); // a per-try timeout (gateway-error)
    expect(retriesError(p, errors.noRoute())).toBe(false);
    expect(retriesStatus(p, 502)).toBe(true);
    expect(retriesStatus(p, 503)).toBe(true);
    expect(retriesStatus(p, 500)).toBe(false);
    expect(retriesStatus(p, 429)).toBe(false);
  });

  test("each retry_on condition alone", () => {
    expect(retriesError(policy({ retry_on: ["connect-failure"] }), reset)).toBe(false);
    expect(retriesError(policy({ retry_on: ["reset"] }), refused)).toBe(false);
    expect(retriesStatus(policy({ retry_on: ["5xx"] }), 500)).toBe(true);
    expect(retriesStatus(policy({ retry_on: ["5xx"] }), 404)).toBe(false);
    expect(retriesStatus(policy({ retry_on: ["retriable-status-codes"], retriable_status_codes: [409] }), 409)).toBe(true);
    expect(retriesStatus(policy({ retry_on: ["429"] }), 429)).toBe(true);
  });

  test("only idempotent methods unless non_idempotent", () => {
    for (const m of ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]) expect(methodRetryable(policy(), m)).toBe(true);
    for (const m of ["POST", "PATCH"]) expect(methodRetryable(policy(), m)).toBe(false);
    expect(methodRetryable(policy({ non_idempotent: true }), "POST")).toBe(true);
  });
});

describe("waiting", () => {
  test("full-jitter exponential backoff stays within [0, min(max, base·2^n))", () => {
    const p = policy({ backoff: { base: "10ms", max: "100ms" } });
    expect(backoffDelay(p, 1, () => 0.999)).toBe(9);
    expect(backoffDelay(p, 3, () => 0.999)).toBe(39);
    expect(backoffDelay(p, 10, () => 0.999)).toBe(99);
    expect(backoffDelay(p, 3, () => 0)).toBe(0);
  });

  test("Retry-After as seconds or an HTTP date", () => {
    expect(retryAfterMs("2")).toBe(2000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(retryAfterMs("Thu, 01 Jan 2026 00:00:03 GMT", now)).toBe(3000);
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });
});

test("the budget allows max(min_concurrency, percent × active) retries in flight", () => {
  const budget = new RetryBudget({ percent: 20, min_concurrency: 3 });
  budget.active = 10;
  budget.retrying = 2;
  expect(budget.allows()).toBe(true);
  budget.retrying = 3;
  expect(budget.allows()).toBe(false);
  budget.active = 100;
  expect(budget.allows()).toBe(true);
  budget.retrying = 20;
  expect(budget.allows()).toBe(false);
});
