/**
 * The fleet's config (top-level `fleet`): what instances share through one Redis — Idempotency-Key
 * records, cache purges and invalidations, the config, heartbeats — and a route's `fly_replay`.
 * A leaf: zod, primitives and other schemas only.
 */
import { z } from "zod";
import { FilePathSchema } from "../config/file-path.ts";
import { PositiveDurationSchema, SizeSchema } from "../config/primitives.ts";

export const FleetRedisSchema = z.strictObject({
  /** `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, `redis+unix:///path`. Use `${REDIS_URL}` (a secret). */
  url: z.string().regex(/^(redis|rediss|valkey|valkeys)(\+tls)?(\+unix)?:\/\/.+/, "must be a redis:// (or rediss://, redis+unix://) URL"),
  /**
   * Longest wait for one Redis answer (and for a connection) before the feature goes on without it
   * (its documented fallback). Give it more than the round trip from the farthest region. Default 250ms.
   */
  timeout: PositiveDurationSchema.prefault("250ms"),
  /** After Redis failed, it is skipped for this long before it is tried again. Default 1s. */
  retry_interval: PositiveDurationSchema.prefault("1s"),
  /** Prefix of every key the fleet keeps in Redis (two fleets can share one Redis with two prefixes). Default `switchyard:fleet:`. */
  key_prefix: z.string().max(64).default("switchyard:fleet:"),
});

export const FleetSchema = z
  .strictObject({
    redis: FleetRedisSchema,
    /** Each instance says it is alive this often; it is listed (and waited for by purges) until `ttl` passes without one. */
    heartbeat: z.strictObject({
      /** Default 1s. */
      interval: PositiveDurationSchema.prefault("1s"),
      /** Default 5s. */
      ttl: PositiveDurationSchema.prefault("5s"),
    }).prefault({}),
    /**
     * This instance's own fleet state, on its disk: the last fleet config it put in force (it starts
     * from it when Redis is down at start) and how far it applied the purge log. Relative to the
     * config file's folder. Default switchyard-fleet.json (beside the config file).
     */
    state_path: FilePathSchema.prefault("switchyard-fleet.json"),
    /** Idempotency-Key records in Redis (routes with `idempotency`), shared by every instance. */
    idempotency: z.strictObject({
      /**
       * When Redis cannot be reached: `local` (default) keeps the record in this machine's libSQL
       * file, as without a fleet (a retry on another instance is not recognised during the outage);
       * `deny` answers 503 to requests with a key (fail closed); `allow` forwards them unrecorded.
       */
      on_failure: z.enum(["local", "allow", "deny"]).default("local"),
      /**
       * Answers up to this size are kept in Redis and replayed; a larger one is recorded without its
       * body and a repeat gets 409 idempotency_answer_not_kept (it is never sent upstream again).
       * The route's `idempotency.max_body` caps it too. Default 1MiB.
       */
      max_answer: SizeSchema.prefault("1MiB"),
    }).prefault({}),
    /** Purges (admin, PURGE method) and invalidations (unsafe methods) reach every instance's caches. */
    purge: z.strictObject({
      /**
       * How long a purge or an invalidating write waits for every live instance to confirm it has
       * applied it; then it is answered, naming those that did not. Default 1s.
       */
      ack_timeout: PositiveDurationSchema.prefault("1s"),
      /**
       * While this instance cannot confirm it has every purge (Redis down or hung): `serve` (default)
       * serves its cached entries anyway (fail open: a purge made meanwhile applies when it is back);
       * `bypass` forwards every request of a cached route as a miss (fail closed).
       */
      on_redis_failure: z.enum(["serve", "bypass"]).default("serve"),
      /**
       * When this instance cannot tell which purges it missed — Redis restarted empty or failed over
       * to a replica that lacks them, the log was trimmed past what it applied, or it starts with no
       * state of its own: `clear` (default) empties its caches; `keep` keeps them.
       */
      on_log_lost: z.enum(["clear", "keep"]).default("clear"),
      /** Entries kept in the purge log (a Redis stream, trimmed approximately). Default 100000. */
      log_max: z.number().int().min(100).max(10_000_000).default(100_000),
    }).prefault({}),
    /** A config pushed or PUT to any instance goes to every instance. */
    config: z.strictObject({
      /** How long a push waits for the live instances' ACK or NACK before it is answered (the rest are listed as pending). Default 1s. */
      ack_timeout: PositiveDurationSchema.prefault("1s"),
    }).prefault({}),
  })
  .superRefine((f, ctx) => {
    // An instance that has not confirmed a purge within ack_timeout has not read the log for longer
    // than its in-sync window (250ms + 250ms + the Redis timeout): it checks before serving again.
    if (f.purge.ack_timeout <= f.redis.timeout + 500) {
      ctx.addIssue({ code: "custom", path: ["purge", "ack_timeout"], message: "must be more than redis.timeout + 500ms" });
    }
    if (f.heartbeat.ttl < 2 * f.heartbeat.interval) {
      ctx.addIssue({ code: "custom", path: ["heartbeat", "ttl"], message: "must be at least twice heartbeat.interval (one lost heartbeat must not drop an instance)" });
    }
  });

/** Fly.io region codes (`ams`, `iad`) and aliases. */
const RegionSchema = z.string().regex(/^[a-z0-9]{2,10}$/, "must be a Fly.io region code such as ams or iad");

/**
 * A route's `fly_replay`: requests with these methods, arriving at a machine outside `region`, are
 * answered with `fly-replay: region=<region>` so Fly's proxy replays them there (writes to the
 * primary region); in `region`, or off Fly.io (no FLY_REGION), they are proxied as usual.
 */
export const FlyReplaySchema = z.strictObject({
  /** The region that takes these requests, e.g. `${PRIMARY_REGION}` (fly.toml's primary_region). */
  region: RegionSchema,
  /** Default POST, PUT, PATCH, DELETE. */
  methods: z.array(z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method")).min(1).default(["POST", "PUT", "PATCH", "DELETE"]),
});

export type FleetConfig = z.infer<typeof FleetSchema>;
export type FleetRedisConfig = z.infer<typeof FleetRedisSchema>;
export type FlyReplayConfig = z.infer<typeof FlyReplaySchema>;
