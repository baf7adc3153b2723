/**
 * Filter `type: rate_limit`: the request must pass each listed limit in order; the first that
 * refuses answers 429 with Retry-After and the RateLimit fields (limits before it have counted
 * the request, as in Envoy). Allowed responses carry the fields too unless `response_headers: false`.
 */
import type { ProxyContext, Filter, FilterVerdict } from "../../proxy/context.ts";
import { SwitchyardError } from "../../util/errors.ts";
import type { FilterFactory, RuntimeDeps } from "../filter.ts";
import { retryAfterSeconds, serviceLimitItem } from "./headers.ts";
import { type LimitDecision, Limiter, localBuckets } from "./limiter.ts";
import { RedisConnection } from "./redis-buckets.ts";
import type { RateLimitFilterConfig } from "./schema.ts";

/** The limiter of a named limit, shared by every route that lists it; kept across a reload when its settings did not change. */
function limiterFor(name: string, deps: RuntimeDeps): Limiter {
  const config = deps.config.rate_limits[name]!; // the root schema checked the name
  const redisConfig = config.scope === "global" ? config.redis! : undefined;
  const redis = redisConfig && deps.once<RedisConnection>(`redis:${redisConfig.url}\u0000${redisConfig.retry_interval}`, (previous) => previous ?? new RedisConnection(redisConfig.url, redisConfig.retry_interval));
  return deps.once<Limiter>(`rate-limit:${name}`, (previous) =>
    previous !== undefined && previous.redis === redis && JSON.stringify(previous.config) === JSON.stringify(config)
      ? previous
      : new Limiter(name, config, localBuckets(name, config), redis));
}

const rateLimited = (limit: string, retryMs: number) => {
  const seconds = retryAfterSeconds(retryMs);
  return new SwitchyardError({
    code: "rate_limited", status: 429, source: "client",
    message: `rate limit "${limit}" exceeded; retry in ${seconds}s`,
    headers: { "retry-after": String(seconds) },
  });
};

const unavailable = (limit: string, retryIntervalMs: number) => new SwitchyardError({
  code: "rate_limit_unavailable", status: 503, source: "internal",
  message: `rate limit "${limit}" cannot be checked (its Redis is unreachable and on_failure is deny)`,
  headers: { "retry-after": String(retryAfterSeconds(retryIntervalMs)) },
});

export const rateLimitFilter: FilterFactory<RateLimitFilterConfig> = (config, deps) => {
  const limiters = config.limits.map((name) => limiterFor(name, deps));
  const self = {};

  /** The RateLimit items of the limits decided so far. */
  interface Items {
    policy: string[];
    state: string[];
  }

  /** Folds one decision into `items`; an error when it refuses the request. */
  const apply = (ctx: ProxyContext, limiter: Limiter, decision: LimitDecision, items: Items): SwitchyardError | undefined => {
    if (decision.kind === "skipped") return undefined;
    if (decision.kind === "unavailable") return unavailable(limiter.name, limiter.config.redis!.retry_interval);
    items.policy.push(decision.tier.policy);
    items.state.push(serviceLimitItem(limiter.name, decision.verdict));
    if (decision.verdict.allowed) return undefined;
    publish(ctx, items);
    return rateLimited(limiter.name, decision.verdict.retryMs);
  };

  const publish = (ctx: ProxyContext, items: Items): void => {
    if (items.policy.length === 0) return;
    const policy = items.policy.join(", ");
    const state = items.state.join(", ");
    const earlier = ctx.rateLimit; // another rate_limit filter on the same route
    ctx.rateLimit = earlier === undefined
      ? { policy, state, addedBy: self }
      : { policy: `${earlier.policy}, ${policy}`, state: `${earlier.state}, ${state}`, addedBy: self };
  };

  /** Checks limiters[from…] in order; stays synchronous while the buckets answer synchronously. */
  const evaluate = (ctx: ProxyContext, from: number, items: Items): FilterVerdict | Promise<FilterVerdict> => {
    for (let i = from; i < limiters.length; i++) {
      const limiter = limiters[i]!;
      const decision = limiter.check(ctx);
      if (decision instanceof Promise) {
        return decision.then((d) => apply(ctx, limiter, d, items) ?? evaluate(ctx, i + 1, items));
      }
      const refused = apply(ctx, limiter, decision, items);
      if (refused !== undefined) return refused;
    }
    if (config.response_headers) publish(ctx, items);
    return undefined;
  };

  return {
    name: "rate-limit",
    onRequest: function rateLimit(ctx: ProxyContext) {
      return evaluate(ctx, 0, { policy: [], state: [] });
    },
    onResponseHeaders: function rateLimitHeaders(ctx: ProxyContext, headers: Headers) {
      const fields = ctx.rateLimit;
      if (fields === undefined || fields.addedBy !== self) return;
      // Appended: an upstream's own policies still apply and stay visible (the fields are lists).
      headers.append("ratelimit-policy", fields.policy);
      headers.append("ratelimit", fields.state);
    },
  } satisfies Filter;
};
