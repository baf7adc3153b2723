/**
 * One named limit (`rate_limits.<name>`), built once per runtime and shared by the routes that
 * list it: a request's key and tier → a verdict from its buckets (local, or Redis with the
 * configured fallback), counted in the metrics.
 */
import type { ProxyContext } from "../../proxy/context.ts";
import { metrics } from "../../observe/metrics.ts";
import { type BucketShape, shapeOf, type Verdict } from "./gcra.ts";
import { compileKey, compileTierOf, type KeyOf } from "./key.ts";
import { LocalBuckets } from "./local-buckets.ts";
import { RedisUnavailable } from "../../util/redis-link.ts";
import type { RedisConnection } from "./redis-buckets.ts";
import type { RateLimitConfig } from "./schema.ts";
import { SupervisorBuckets, workerCount } from "./shared-buckets.ts";

export interface Tier {
  /** "" for a limit without tiers. */
  readonly name: string;
  readonly shape: BucketShape;
  /** This tier's RateLimit-Policy item (draft-ietf-httpapi-ratelimit-headers-11 §3). */
  readonly policy: string;
}

export type LimitDecision =
  /** The request lacks the key and the limit skips such requests. */
  | { readonly kind: "skipped" }
  /** Redis is down and the limit fails closed. */
  | { readonly kind: "unavailable" }
  | { readonly kind: "verdict"; readonly tier: Tier; readonly verdict: Verdict };

export interface Buckets {
  take(key: string, shape: BucketShape): Verdict | Promise<Verdict>;
  dispose(): void;
}

const SKIPPED: LimitDecision = { kind: "skipped" };
const UNAVAILABLE: LimitDecision = { kind: "unavailable" };

/** This process's local buckets for a limit: its own, or with workers the supervisor's (shared-buckets.ts). */
export function localBuckets(name: string, config: RateLimitConfig): Buckets {
  const onEvict = () => metrics.rateLimitEvictions.inc([name]);
  const workers = workerCount();
  // The store id travels with every take: the name and a short digest of the settings.
  if (workers > 1) return new SupervisorBuckets(`${name}\u0000${Bun.hash(JSON.stringify(config)).toString(36)}`, config.max_keys, workers, name, onEvict);
  return new LocalBuckets(name, config.max_keys, onEvict);
}

export class Limiter {
  private readonly keyOf: KeyOf;
  private readonly tierOf: ((ctx: ProxyContext) => string | undefined) | undefined;
  private readonly tiers = new Map<string, Tier>();
  private readonly defaultTier: Tier;
  private readonly decided: Record<"local" | "global", Record<"allowed" | "limited", { inc(): void }>>;
  private readonly skipped: { inc(): void };
  private readonly unavailable: { inc(): void };

  constructor(
    readonly name: string,
    readonly config: RateLimitConfig,
    /** Buckets on this machine: the limit's own with scope local, the fallback of a global one. */
    private readonly local: Buckets,
    /** Set with scope global. */
    readonly redis: RedisConnection | undefined,
  ) {
    this.keyOf = compileKey(config.key, config.ipv6_prefix);
    const tier = (tierName: string, rate: { count: number; windowSeconds: number }, burst: number | undefined): Tier => ({
      name: tierName,
      shape: shapeOf(rate.count, rate.windowSeconds, burst ?? rate.count),
      policy: `"${name}";q=${rate.count};w=${rate.windowSeconds}`,
    });
    if (config.tiers !== undefined) {
      for (const [tierName, t] of Object.entries(config.tiers.levels)) this.tiers.set(tierName, tier(tierName, t.rate, t.burst));
      this.tierOf = compileTierOf(config.tiers.from);
      this.defaultTier = this.tiers.get(config.tiers.default)!;
    } else {
      this.tierOf = undefined;
      this.defaultTier = tier("", config.rate!, config.burst);
    }
    const decisions = metrics.rateLimitDecisions;
    const scope = (where: string) => ({ allowed: decisions.bind([name, where, "allowed"]), limited: decisions.bind([name, where, "limited"]) });
    this.decided = { local: scope("local"), global: scope("global") };
    this.skipped = decisions.bind([name, config.scope, "skipped"]);
    this.unavailable = decisions.bind([name, "global", "unavailable"]);
  }

  check(ctx: ProxyContext): LimitDecision | Promise<LimitDecision> {
    const key = this.keyOf(ctx);
    if (key === undefined && this.config.missing_key === "skip") {
      this.skipped.inc();
      return SKIPPED;
    }
    let tier = this.defaultTier;
    // Keys are never empty, so "" is the shared anonymous bucket. Tiers keep separate buckets.
    let bucket = key ?? "";
    if (this.tierOf !== undefined) {
      const tierName = this.tierOf(ctx);
      tier = (tierName !== undefined ? this.tiers.get(tierName) : undefined) ?? tier;
      bucket = `${tier.name}:${bucket}`;
    }
    if (this.redis !== undefined) return this.checkGlobal(bucket, tier, this.redis);
    const verdict = this.local.take(bucket, tier.shape);
    return verdict instanceof Promise ? verdict.then((v) => this.counted("local", tier, v)) : this.counted("local", tier, verdict);
  }

  /** Once no runtime uses this limiter (runtime dispose): its local buckets go. */
  dispose(): void {
    this.local.dispose();
  }

  private async checkGlobal(bucket: string, tier: Tier, redis: RedisConnection): Promise<LimitDecision> {
    const redisConfig = this.config.redis!;
    try {
      const verdict = await redis.take(`${redisConfig.key_prefix}${this.name}:${bucket}`, tier.shape, redisConfig.timeout);
      return this.counted("global", tier, verdict);
    } catch (e) {
      const reason = e instanceof RedisUnavailable ? e.reason : "error";
      if (reason !== "down") metrics.rateLimitRedisErrors.inc([this.name, reason]);
      metrics.rateLimitFallbacks.inc([this.name, redisConfig.on_failure]);
      if (redisConfig.on_failure === "allow") return SKIPPED;
      if (redisConfig.on_failure === "deny") {
        this.unavailable.inc();
        return UNAVAILABLE;
      }
      return this.counted("local", tier, await this.local.take(bucket, tier.shape));
    }
  }

  private counted(scope: "local" | "global", tier: Tier, verdict: Verdict): LimitDecision {
    this.decided[scope][verdict.allowed ? "allowed" : "limited"].inc();
    return { kind: "verdict", tier, verdict };
  }
}
