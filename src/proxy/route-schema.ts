import { z } from "zod";
import { DurationSchema, RegexSchema, SizeSchema, TokenSchema } from "../config/primitives.ts";
import { CoalesceSchema, IdempotencySchema } from "../cache/hold-schema.ts";
import { RouteCacheSchema } from "../cache/schema.ts";
import { ComposeSchema } from "../compose/schema.ts";
import { FilterSchema } from "../filters/schema.ts";
import { FlyReplaySchema } from "../fleet/schema.ts";
import { MODULE_NAME } from "../modules/schema.ts";
import { CompressionSchema } from "./compress-schema.ts";
import { MirrorSchema } from "./mirror-schema.ts";
import { RetryPolicySchema } from "./retry-schema.ts";
import { checkRolloutRoute, RolloutSchema } from "../rollout/schema.ts";
import { SloSchema } from "../slo/schema.ts";
import { GrpcTranscodeSchema } from "./transcode/schema.ts";

/** Path match: exactly one of exact, prefix (a plain string prefix, as Envoy's) or regex (against the path only). */
export const PathMatchSchema = z
  .strictObject({
    exact: z.string().startsWith("/").optional(),
    prefix: z.string().startsWith("/").optional(),
    regex: RegexSchema.optional(),
  })
  .refine((m) => [m.exact, m.prefix, m.regex].filter((v) => v !== undefined).length === 1, {
    message: "give exactly one of exact, prefix or regex",
  });

/** A header or query-parameter condition: exact value, regex, or present (true) / absent (false). */
export const ValueMatchSchema = z
  .strictObject({
    name: TokenSchema,
    exact: z.string().optional(),
    regex: RegexSchema.optional(),
    present: z.boolean().optional(),
  })
  .refine((m) => [m.exact, m.regex, m.present].filter((v) => v !== undefined).length === 1, {
    message: "give exactly one of exact, regex or present",
  });

const HOST_RE = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/;

export const RouteMatchSchema = z.strictObject({
  /** Hosts to match (exact, or `*.example.com` for any subdomain); any host when absent. Case-insensitive; a port in the request's Host is ignored unless the pattern has one. */
  hosts: z.array(z.string().toLowerCase().regex(HOST_RE, "must be a host name, optionally starting with *.")).min(1).optional(),
  /** Path condition; any path when absent. */
  path: PathMatchSchema.optional(),
  /** Methods to match (upper case); any method when absent. */
  methods: z.array(z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method")).min(1).optional(),
  /** Every header condition must hold. */
  headers: z.array(ValueMatchSchema).optional(),
  /** Every query-parameter condition must hold. */
  query: z.array(ValueMatchSchema).optional(),
});

export const RewriteSchema = z
  .strictObject({
    /** Replace the matched path prefix (needs `match.path.prefix`) with this. */
    path_prefix: z.string().startsWith("/").optional(),
    /** Regex substitution on the path (`$1` style groups). */
    path_regex: z.strictObject({ pattern: RegexSchema, substitution: z.string() }).optional(),
    /** Host header sent upstream (default: the client's Host is kept). */
    host: z.string().min(1).optional(),
    /** Query parameters: `set` replaces (or adds) values, `remove` drops names; the rest pass as sent. */
    query: z.strictObject({
      set: z.record(z.string().min(1), z.string()).optional(),
      remove: z.array(z.string().min(1)).optional(),
    }).optional(),
  })
  .refine((r) => !(r.path_prefix !== undefined && r.path_regex !== undefined), {
    message: "give path_prefix or path_regex, not both",
  });

/** A field value that can be sent (RFC 9110 §5.5): no CR, LF or NUL, Latin-1 only. */
export const HeaderValueSchema = z.string().regex(/^[\t\x20-\x7e\x80-\xff]*$/, "must be a valid header value (no line breaks or control characters, Latin-1 only)");
const HeaderValuesSchema = z.record(TokenSchema, HeaderValueSchema);

export const HeaderRulesSchema = z.strictObject({
  /** Appended (existing values kept). */
  add: HeaderValuesSchema.optional(),
  /** Set (existing values replaced). */
  set: HeaderValuesSchema.optional(),
  /** Removed. */
  remove: z.array(TokenSchema).optional(),
});

export const RouteTimeoutsSchema = z.strictObject({
  /** The whole exchange, from the request until the response body has ended; `0` disables (long streams). Default 60s. */
  request: DurationSchema.prefault("60s"),
  /** No bytes in either direction for this long aborts the exchange; `0` disables. Default 60s. */
  idle: DurationSchema.prefault("60s"),
});

export const RouteSchema = z
  .strictObject({
    /** A name for logs and metrics; defaults to `route-<index>`. */
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, "must be letters, digits, _ . or -").optional(),
    /** Conditions; the first route whose conditions all hold wins. */
    match: RouteMatchSchema.prefault({}),
    rewrite: RewriteSchema.optional(),
    /** The cluster to forward to (or give `weighted_clusters`). */
    to: z.string().min(1).optional(),
    /** Split traffic by weight between clusters (a canary: 95/5) instead of `to`. */
    weighted_clusters: z.array(z.strictObject({ cluster: z.string().min(1), weight: z.number().int().min(0).max(10_000) })).min(1).optional(),
    /** A progressive rollout from a stable to a canary cluster that promotes or rolls back itself (instead of `to`); see src/rollout/schema.ts. */
    rollout: RolloutSchema.optional(),
    /** Service level objectives: availability and latency targets, with error budget and burn rates; see src/slo/schema.ts. */
    slo: SloSchema.optional(),
    /** Answer by composition instead of forwarding: several calls in parallel, merged into one JSON response. */
    compose: ComposeSchema.optional(),
    /**
     * Answer with a custom route module (`modules.dir`, file name without .ts) instead of
     * forwarding. It sees the path without the route's `match.path.prefix` (or as `rewrite` makes it).
     */
    module: z.string().regex(MODULE_NAME, "must be a module's file name without .ts").optional(),
    /** Requests with this header (or cookie) go to `cluster`, whatever the weights say (e.g. x-canary: 1). */
    override: z
      .strictObject({
        header: TokenSchema.optional(),
        cookie: TokenSchema.optional(),
        /** The value that selects; any value when absent. */
        value: z.string().optional(),
        cluster: z.string().min(1),
      })
      .refine((o) => (o.header === undefined) !== (o.cookie === undefined), { message: "give exactly one of header or cookie" })
      .optional(),
    /**
     * Answer this instead of the error when every try failed, the breaker is open, the cluster is
     * overloaded or has no endpoint left (marked x-switchyard-fallback: static).
     */
    fallback: z
      .strictObject({
        status: z.number().int().min(200).max(599).default(200),
        body: z.string().default(""),
        headers: z.record(TokenSchema, HeaderValueSchema).default({}),
      })
      .optional(),
    /** Idempotency keys: a POST/PUT/PATCH with an Idempotency-Key is forwarded once and its answer replayed. */
    idempotency: IdempotencySchema.optional(),
    /** Compress responses (br, zstd, gzip) by Accept-Encoding, for the listed content types. */
    compression: CompressionSchema.optional(),
    /** Coalesce identical concurrent GETs into one upstream request (for routes without a cache; a cache collapses by itself). */
    coalesce: CoalesceSchema.optional(),
    /** Serve and store responses through a named cache (RFC 9111 shared-cache rules). */
    cache: RouteCacheSchema.optional(),
    /** Copy a sampled share of requests to a shadow cluster, fire and forget. */
    mirror: MirrorSchema.optional(),
    /** Clusters tried in order when the chosen one has no available endpoint (priority failover). */
    failover: z.array(z.string().min(1)).min(1).optional(),
    timeouts: RouteTimeoutsSchema.prefault({ request: "60s", idle: "60s" }),
    /**
     * Largest request body on this route; a larger one gets 413 (a declared length before anything
     * is sent, a chunked body as soon as it passes the limit). Only lowers the listener's
     * max_request_body, which Bun enforces first. Default: the listener's.
     */
    max_request_body: SizeSchema.optional(),
    /** Retry failed tries on another endpoint (see RetryPolicySchema); none when absent. */
    retry: RetryPolicySchema.optional(),
    /**
     * Filters run in this order before the request goes on (phase 2): e.g. cors, auth, authorize,
     * rate_limit. One that answers (a preflight, a 401, a 429) ends the request there.
     */
    filters: z.array(FilterSchema).optional(),
    /** Header rules on the request sent upstream and on the response sent to the client. */
    headers: z.strictObject({ request: HeaderRulesSchema.optional(), response: HeaderRulesSchema.optional() }).optional(),
    /**
     * Translate HTTP/JSON requests into unary RPCs of a gRPC service (Connect or gRPC-Web upstream)
     * and their replies back into JSON; see src/proxy/transcode/schema.ts.
     */
    grpc_transcode: GrpcTranscodeSchema.optional(),
    /**
     * Fly.io: send these methods to one region (writes to the primary region's database): elsewhere
     * they are answered with a `fly-replay` header, which Fly's proxy replays there.
     */
    fly_replay: FlyReplaySchema.optional(),
    /** Proxy WebSocket upgrades on this route. Default false: an upgrade request is then forwarded as plain HTTP without its Upgrade header. */
    websocket: z.boolean().default(false),
    /** Client headers passed on the upstream WebSocket handshake, besides X-Forwarded-*, X-Request-Id and the subprotocols. */
    websocket_headers: z.array(TokenSchema).default(["authorization", "cookie", "origin", "user-agent"]),
  })
  .superRefine((r, ctx) => {
    const targets = [r.to, r.weighted_clusters, r.rollout, r.compose, r.module].filter((t) => t !== undefined).length;
    if (targets !== 1) ctx.addIssue({ code: "custom", path: ["to"], message: `give exactly one of to, weighted_clusters, ${r.rollout !== undefined ? "rollout, " : ""}compose or module` });
    checkRolloutRoute(r, (path, message) => ctx.addIssue({ code: "custom", path, message }));
    const kind = r.compose !== undefined ? "compose" : r.module !== undefined ? "module" : undefined;
    if (kind !== undefined) {
      // An answer made here: nothing of a single upstream exchange applies to it (a module's
      // path may still be rewritten: it is the path the module sees).
      const forwardingOnly = { override: r.override, failover: r.failover, mirror: r.mirror, cache: r.cache, coalesce: r.coalesce, idempotency: r.idempotency, rewrite: kind === "compose" ? r.rewrite : undefined, grpc_transcode: r.grpc_transcode };
      for (const [key, value] of Object.entries(forwardingOnly)) {
        if (value !== undefined) ctx.addIssue({ code: "custom", path: [key], message: `not available on a ${kind} route` });
      }
      if (r.websocket) ctx.addIssue({ code: "custom", path: ["websocket"], message: `not available on a ${kind} route` });
    }
    if (r.weighted_clusters && r.weighted_clusters.every((w) => w.weight === 0)) {
      ctx.addIssue({ code: "custom", path: ["weighted_clusters"], message: "at least one weight must be above 0" });
    }
    if (r.grpc_transcode !== undefined) {
      // These work on the client's HTTP request as sent, which a transcoded route does not forward.
      for (const key of ["cache", "coalesce", "idempotency", "mirror"] as const) {
        if (r[key] !== undefined) ctx.addIssue({ code: "custom", path: [key], message: "cannot be combined with grpc_transcode" });
      }
      if (r.websocket) ctx.addIssue({ code: "custom", path: ["websocket"], message: "cannot be combined with grpc_transcode" });
      if (r.rewrite?.path_prefix !== undefined || r.rewrite?.path_regex !== undefined) {
        ctx.addIssue({ code: "custom", path: ["rewrite"], message: "a grpc_transcode route calls /package.Service/Method: a path rewrite has nothing to rewrite" });
      }
    }
    if (r.rewrite?.path_prefix !== undefined && r.match.path?.prefix === undefined) {
      ctx.addIssue({ code: "custom", path: ["rewrite", "path_prefix"], message: "needs match.path.prefix to replace" });
    }
  });

export type Route = z.infer<typeof RouteSchema>;
export type RouteMatch = z.infer<typeof RouteMatchSchema>;
export type HeaderRules = z.infer<typeof HeaderRulesSchema>;
export type ValueMatch = z.infer<typeof ValueMatchSchema>;
