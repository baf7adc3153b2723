import { z } from "zod";
import { nameSchema, PositiveDurationSchema, TokenSchema } from "../../config/primitives.ts";

/** Limit and tier names: they appear in the RateLimit headers (as Structured Field strings, nothing to escape) and in metric labels. */
export const LimitNameSchema = nameSchema("rate limit").max(64);
const TierNameSchema = nameSchema("tier").max(64);

const RATE_RE = /^(\d+)\s*\/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hr|hour|d|day)$/;
const RATE_UNITS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hr: 3600, hour: 3600, d: 86_400, day: 86_400 };

/** A rate: `count` requests per `windowSeconds` (whole seconds, as RateLimit-Policy's `w` needs). */
export interface Rate {
  readonly count: number;
  readonly windowSeconds: number;
}

/** `60/min`, `10/s`, `1000/h`, `5000/day`, or with a multiple: `100/15min`, `20/10s`. */
export function parseRate(text: string): Rate | undefined {
  const m = RATE_RE.exec(text.trim());
  if (!m) return undefined;
  const count = Number(m[1]);
  const windowSeconds = (m[2] === "" ? 1 : Number(m[2])) * RATE_UNITS[m[3]!]!;
  if (count < 1 || windowSeconds < 1) return undefined;
  return { count, windowSeconds };
}

export const RateSchema = z
  .string()
  .describe("Requests per window: `60/min`, `10/s`, `1000/h`, `5000/day`, `100/15min`")
  .transform((text, ctx) => {
    const rate = parseRate(text);
    if (rate === undefined) {
      ctx.addIssue({ code: "custom", message: `"${text}" is not a rate (use e.g. 10/s, 60/min, 1000/h, 100/15min; count and window at least 1)` });
      return z.NEVER;
    }
    if (rate.count > 10_000_000 || rate.windowSeconds > 31 * 86_400) {
      ctx.addIssue({ code: "custom", message: `"${text}": at most 10000000 requests per window, and windows up to 31 days` });
      return z.NEVER;
    }
    return rate;
  });

/** A JWT/introspection claim name (top level of the verified claims). */
const ClaimSchema = z.string().min(1).max(128);

/** What a bucket is keyed by, read from the request (or from what the auth filter accepted). */
export const KeyPartSchema = z.union([
  z.enum(["client_ip", "api_key", "route"]).describe("client_ip: the client address (after trusted proxies); api_key: the name of the API key the auth filter accepted; route: the route's name (one bucket for the whole route)"),
  z.strictObject({ header: TokenSchema.describe("A request header's value") }),
  z.strictObject({ claim: ClaimSchema.describe("A verified token claim (set by the route's auth filter)") }),
]);

export const TierSelectorSchema = z.union([
  z.literal("auth_tier").describe("The tier of the API key the auth filter accepted"),
  z.strictObject({ claim: ClaimSchema.describe("A verified token claim whose value names the tier") }),
]);

export const TierSchema = z.strictObject({
  rate: RateSchema,
  /** Requests allowed at once on a full bucket. Default: the rate's count. */
  burst: z.number().int().min(1).max(10_000_000).optional(),
});

export const TiersSchema = z
  .strictObject({
    /** Where the tier name comes from. */
    from: TierSelectorSchema,
    /** The tier of requests that name none, or one not listed in `levels`. */
    default: TierNameSchema,
    /** Tier name → its rate and burst. */
    levels: z.record(TierNameSchema, TierSchema).refine((l) => Object.keys(l).length > 0, "give at least one tier"),
  })
  .superRefine((t, ctx) => {
    if (t.levels !== null && typeof t.levels === "object" && typeof t.default === "string" && !(t.default in t.levels)) {
      ctx.addIssue({ code: "custom", path: ["default"], message: `unknown tier "${t.default}" (levels: ${Object.keys(t.levels).join(", ")})` });
    }
  });

export const RedisLimitSchema = z.strictObject({
  /** `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, `redis+unix:///path`. Use `${REDIS_URL}`. */
  url: z.string().regex(/^(redis|rediss|valkey|valkeys)(\+tls)?(\+unix)?:\/\/.+/, "must be a redis:// (or rediss://, redis+unix://) URL"),
  /** Longest wait for Redis's answer (and for a connection) before the request goes on without it. Default 50ms. */
  timeout: PositiveDurationSchema.prefault("50ms"),
  /** After Redis failed, requests skip it for this long before one tries again. Default 1s. */
  retry_interval: PositiveDurationSchema.prefault("1s"),
  /**
   * When Redis cannot be reached: `local` (default) applies the same limit per instance (fail open
   * onto the local limit); `allow` lets every request through; `deny` answers 503 (fail closed).
   */
  on_failure: z.enum(["local", "allow", "deny"]).default("local"),
  /** Prefix of the bucket keys in Redis. Default `switchyard:rl:`. */
  key_prefix: z.string().max(64).default("switchyard:rl:"),
});

/** One named limit (`rate_limits.<name>`): a token bucket per key, GCRA-style. */
export const RateLimitSchema = z
  .strictObject({
    /** What a bucket is keyed by: one part, or a list whose values are combined (e.g. `[client_ip, route]`). */
    key: z.union([KeyPartSchema, z.array(KeyPartSchema).min(1).max(4)]),
    /** A request without the key (no such header, no auth identity): `anonymous` (default) shares one bucket; `skip` is not limited. */
    missing_key: z.enum(["anonymous", "skip"]).default("anonymous"),
    /** The sustained rate. Give either `rate` (and `burst`) or `tiers`. */
    rate: RateSchema.optional(),
    /** Requests allowed at once on a full bucket. Default: the rate's count (60/min → 60). */
    burst: z.number().int().min(1).max(10_000_000).optional(),
    /** Different rates by tier (free, premium …), chosen per request. */
    tiers: TiersSchema.optional(),
    /** `local` (default): buckets on this machine (shared by its workers); `global`: in Redis, shared by every instance. */
    scope: z.enum(["local", "global"]).default("local"),
    /** Where global buckets live (required with `scope: global`). */
    redis: RedisLimitSchema.optional(),
    /** Most keys tracked on this machine; beyond it the least recently used bucket is dropped (memory stays bounded). Default 100000. */
    max_keys: z.number().int().min(1).max(10_000_000).default(100_000),
    /**
     * `client_ip` keys of IPv6 clients are their address's first this many bits: one subscriber
     * usually holds a whole /64 and could otherwise take a fresh bucket with every address in it.
     * 128 keys each address on its own. Default 64.
     */
    ipv6_prefix: z.number().int().min(32).max(128).default(64),
  })
  .superRefine((l, ctx) => {
    if (l.rate === undefined && l.tiers === undefined) ctx.addIssue({ code: "custom", path: ["rate"], message: "give rate (and burst) or tiers" });
    if (l.rate !== undefined && l.tiers !== undefined) ctx.addIssue({ code: "custom", path: ["tiers"], message: "give either rate or tiers, not both (each tier has its own rate)" });
    if (l.burst !== undefined && l.tiers !== undefined) ctx.addIssue({ code: "custom", path: ["burst"], message: "with tiers, give burst per tier" });
    if (l.scope === "global" && l.redis === undefined) ctx.addIssue({ code: "custom", path: ["redis"], message: "scope: global needs redis: { url }" });
    if (l.scope === "local" && l.redis !== undefined) ctx.addIssue({ code: "custom", path: ["scope"], message: "redis is given but scope is local; set scope: global" });
  });

export const RateLimitsSchema = z.record(LimitNameSchema, RateLimitSchema);

/** Filter `type: rate_limit`: the request must pass every named limit, in order. */
export const RateLimitFilterSchema = z.strictObject({
  type: z.literal("rate_limit"),
  /** Names from the top-level `rate_limits`; all must allow the request. */
  limits: z.array(LimitNameSchema).min(1).refine((names) => new Set(names).size === names.length, "a limit is listed twice"),
  /** Add RateLimit-Policy and RateLimit to allowed responses too (429s always carry them). Default true. */
  response_headers: z.boolean().default(true),
});

export type RateLimitConfig = z.infer<typeof RateLimitSchema>;
export type RateLimitFilterConfig = z.infer<typeof RateLimitFilterSchema>;
export type KeyPart = z.infer<typeof KeyPartSchema>;
export type TierSelector = z.infer<typeof TierSelectorSchema>;
export type RedisLimitConfig = z.infer<typeof RedisLimitSchema>;
