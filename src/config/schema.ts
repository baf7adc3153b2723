import { z } from "zod";
import { CacheSchema } from "../cache/schema.ts";
import { AuthProvidersSchema } from "../filters/auth/schema.ts";
import { TelemetrySchema } from "../observe/tracing-schema.ts";
import { RateLimitsSchema } from "../filters/rate-limit/schema.ts";
import { EgressSchema } from "../egress/schema.ts";
import { FleetSchema } from "../fleet/schema.ts";
import { ModulesSchema } from "../modules/schema.ts";
import { RouteSchema } from "../proxy/route-schema.ts";
import { GuardShape } from "../security/schema.ts";
import { StateSchema } from "../store/schema.ts";
import { ListenerTlsSchema } from "../security/tls-schema.ts";
import { ClusterSchema } from "../upstream/cluster-schema.ts";
import { checkProtocols, ProtocolsShape } from "./protocols-schema.ts";
import { LogTargetSchema } from "./file-path.ts";
import { DurationSchema, nameSchema, PortSchema, SizeSchema, TokenSchema } from "./primitives.ts";

const AddressSchema = z.string().min(1).describe("An IP address or host name to bind");

export const ListenerSchema = z.strictObject({
  /** A name for logs. Defaults to `listener-<index>`. */
  name: z.string().optional(),
  /** Bind address. Default 0.0.0.0. */
  address: AddressSchema.default("0.0.0.0"),
  port: PortSchema,
  /** Largest request body accepted; larger gets 413. Default 128MiB. */
  max_request_body: SizeSchema.prefault("128MiB"),
  /** How long a client connection may sit idle between requests. Default 30s (max 255s, Bun's limit). */
  idle_timeout: DurationSchema.prefault("30s").refine((ms) => ms <= 255_000, "must be at most 255s (Bun's limit)"),
  /**
   * Answer GET /healthz and /readyz on this listener too (before routing), for platforms whose
   * health checks can only reach the public port (Fly.io). Default false.
   */
  health_checks: z.boolean().default(false),
  // Limits on the request head, path normalization, header names, trusted proxies (security/schema.ts).
  ...GuardShape,
  /** Terminate TLS here (certificates by SNI, optional client certificates); plain HTTP when absent. */
  tls: ListenerTlsSchema.optional(),
  // HTTP versions served and the HTTP/2 limits (server/protocols-schema.ts).
  ...ProtocolsShape,
  /**
   * `proxy` (default): the routes. `egress`: a forward proxy for the local service's outbound
   * traffic (absolute-form HTTP and CONNECT), to the destinations `egress.allow` names.
   */
  mode: z.enum(["proxy", "egress"]).default("proxy"),
  /** The egress listener's settings (with `mode: egress`). */
  egress: EgressSchema.optional(),
}).superRefine((l, ctx) => {
  if (l.mode === "egress" && l.egress === undefined) ctx.addIssue({ code: "custom", path: ["egress"], message: "an egress listener needs egress.allow (the destinations it may reach)" });
  if (l.mode !== "egress" && l.egress !== undefined) ctx.addIssue({ code: "custom", path: ["egress"], message: "only for mode: egress" });
  if (l.mode === "egress" && l.health_checks) ctx.addIssue({ code: "custom", path: ["health_checks"], message: "not available on an egress listener" });
  if (l.mode === "egress" && l.tls !== undefined) ctx.addIssue({ code: "custom", path: ["tls"], message: "not available on an egress listener (bind it to loopback for the local service)" });
  checkProtocols(l, (path, message) => ctx.addIssue({ code: "custom", path, message }));
});

export const AdminSchema = z.strictObject({
  /** Bind address of the admin listener. Default 127.0.0.1: never public unless you say so. */
  address: AddressSchema.default("127.0.0.1"),
  port: PortSchema.default(9901),
  /** Bearer token for everything but /healthz and /readyz (use `${ADMIN_TOKEN}`). None: open to whoever reaches the address. */
  token: z.string().min(16, "use at least 16 characters").optional(),
});

export const EchoSchema = z.strictObject({
  /** Bind address of the built-in echo upstream (a demo and test backend). Default 127.0.0.1. */
  address: AddressSchema.default("127.0.0.1"),
  port: PortSchema.default(9902),
});

export const AccessLogSchema = z.strictObject({
  /** Write one JSON line per request. Default true. */
  enabled: z.boolean().default(true),
  /** `stdout`, `stderr` or a file path (relative to the config file's folder). Default stdout. */
  path: LogTargetSchema.default("stdout"),
  /** Query parameters whose values are replaced by `[redacted]` in the logged path. */
  redact_query: z.array(TokenSchema).default(["token", "access_token", "api_key", "apikey", "key", "password", "secret", "signature"]),
  /** Request headers to log (under `headers`). Authorization, Proxy-Authorization, Cookie, Set-Cookie and X-Api-Key are always logged as `[redacted]`. Default user-agent and referer. */
  headers: z.array(TokenSchema).default(["user-agent", "referer"]),
});

export const ShutdownSchema = z.strictObject({
  /** On SIGTERM/SIGINT, how long in-flight requests may take to finish before connections are closed. Default 30s. */
  drain_timeout: DurationSchema.prefault("30s"),
});

export const ConfigSchema = z
  .strictObject({
    /** For editors: the JSON Schema (see `switchyard schema`). Ignored by the proxy. */
    $schema: z.string().optional(),
    listeners: z.array(ListenerSchema).min(1, "needs at least one listener"),
    /** Processes serving the listeners together (reusePort; each has its own upstream connection pool). Default 1. */
    workers: z.number().int().min(1).max(64).default(1),
    admin: AdminSchema.optional(),
    echo: EchoSchema.optional(),
    routes: z.array(RouteSchema).default([]),
    clusters: z.record(nameSchema("cluster"), ClusterSchema).prefault({}),
    /** Named HTTP caches that routes refer to (`routes[].cache.name`). */
    caches: z.record(nameSchema("cache"), CacheSchema).prefault({}),
    /** Named auth providers (jwt, introspection, ext_authz, api_key) that routes' `auth` filters refer to. */
    auth: AuthProvidersSchema.prefault({}),
    /** Named rate limits that `rate_limit` filters refer to (`routes[].filters[].limits`). */
    rate_limits: RateLimitsSchema.prefault({}),
    /** Custom route modules (routes with `module:`). */
    modules: ModulesSchema.optional(),
    access_log: AccessLogSchema.prefault({}),
    /** Traces (OTLP); more telemetry may join here. */
    telemetry: TelemetrySchema.prefault({}),
    shutdown: ShutdownSchema.prefault({ drain_timeout: "30s" }),
    /** The libSQL file of rollout progress and SLO history (used only when a route has `rollout` or `slo`). */
    state: StateSchema.prefault({}),
    /**
     * Several instances (machines, regions) as one: Idempotency-Key records, cache purges and the
     * config shared through Redis, heartbeats for GET /fleet. Read at start. None: this instance alone.
     */
    fleet: FleetSchema.optional(),
  })
  // Cross-references are checked even when other parts of the file are invalid (`when`), so
  // `validate` reports every problem at once; the value may then be partly unparsed, hence the guards.
  .superRefine((config, ctx) => {
    const routes: unknown[] = Array.isArray(config.routes) ? config.routes : [];
    const clusters = config.clusters !== null && typeof config.clusters === "object" ? Object.keys(config.clusters) : [];
    const names = new Map<string, number>();
    routes.forEach((raw, i) => {
      const route = (raw ?? {}) as { to?: unknown; name?: unknown; weighted_clusters?: unknown; rollout?: { stable?: unknown; canary?: unknown } | null; override?: unknown; failover?: unknown; mirror?: unknown; cache?: unknown; filters?: unknown; compose?: { calls?: unknown }; module?: unknown };
      if (route.module !== undefined && config.modules === undefined) ctx.addIssue({ code: "custom", path: ["routes", i, "module"], message: "needs modules.dir (where module files are loaded from)" });
      const check = (name: unknown, path: (string | number)[]) => {
        if (typeof name !== "string" || name === "" || clusters.includes(name)) return;
        ctx.addIssue({
          code: "custom", path: ["routes", i, ...path],
          message: `unknown cluster "${name}"${clusters.length ? ` (known: ${clusters.join(", ")})` : " (no clusters are defined)"}`,
        });
      };
      check(route.to, ["to"]);
      if (Array.isArray(route.weighted_clusters)) route.weighted_clusters.forEach((w: { cluster?: unknown } | null, j) => check(w?.cluster, ["weighted_clusters", j, "cluster"]));
      check((route.override as { cluster?: unknown } | undefined)?.cluster, ["override", "cluster"]);
      check(route.rollout?.stable, ["rollout", "stable"]);
      check(route.rollout?.canary, ["rollout", "canary"]);
      if (Array.isArray(route.failover)) route.failover.forEach((name, j) => check(name, ["failover", j]));
      check((route.mirror as { cluster?: unknown } | undefined)?.cluster, ["mirror", "cluster"]);
      const calls = route.compose?.calls;
      if (calls !== null && typeof calls === "object") {
        for (const [name, call] of Object.entries(calls as Record<string, { cluster?: unknown } | null>)) check(call?.cluster, ["compose", "calls", name, "cluster"]);
      }
      const cacheName = (route.cache as { name?: unknown } | undefined)?.name;
      const caches = config.caches !== null && typeof config.caches === "object" ? Object.keys(config.caches) : [];
      if (typeof cacheName === "string" && !caches.includes(cacheName)) {
        ctx.addIssue({ code: "custom", path: ["routes", i, "cache", "name"], message: `unknown cache "${cacheName}"${caches.length ? ` (known: ${caches.join(", ")})` : " (no caches are defined)"}` });
      }
      checkProviderNames(route.filters, Object.keys(isRecord(config.auth) ? config.auth : {}), (path, message) => ctx.addIssue({ code: "custom", path: ["routes", i, "filters", ...path], message }));
      checkFilterReferences(route.filters, config.rate_limits, (path, message) => ctx.addIssue({ code: "custom", path: ["routes", i, "filters", ...path], message }));
      if (typeof route.name !== "string") return;
      const first = names.get(route.name);
      if (first !== undefined) ctx.addIssue({ code: "custom", path: ["routes", i, "name"], message: `duplicate route name (also routes[${first}])` });
      else names.set(route.name, i);
    });
    // Two caches on one file would share (and evict, and purge) each other's entries.
    const cacheFiles = new Map<string, string>();
    for (const [name, cache] of Object.entries((config.caches ?? {}) as Record<string, { path?: unknown }>)) {
      if (typeof cache?.path !== "string") continue;
      const other = cacheFiles.get(cache.path);
      if (other !== undefined) ctx.addIssue({ code: "custom", path: ["caches", name, "path"], message: `the file is already used by cache "${other}"; give each cache its own path` });
      else cacheFiles.set(cache.path, name);
    }
    const bound = new Map<string, string>();
    const claim = (address: unknown, port: unknown, path: (string | number)[]) => {
      if (typeof address !== "string" || typeof port !== "number" || port === 0) return;
      const key = `${address}:${port}`;
      const other = bound.get(key) ?? bound.get(`0.0.0.0:${port}`) ?? (address === "0.0.0.0" ? [...bound].find(([k]) => k.endsWith(`:${port}`))?.[1] : undefined);
      if (other) ctx.addIssue({ code: "custom", path, message: `port ${port} is already used by ${other}` });
      else bound.set(key, path.join("."));
    };
    const listeners: unknown[] = Array.isArray(config.listeners) ? config.listeners : [];
    if (typeof config.workers === "number" && config.workers > 1) {
      listeners.forEach((l, i) => {
        if ((l as { port?: unknown } | null)?.port === 0) ctx.addIssue({ code: "custom", path: ["listeners", i, "port"], message: "workers > 1 need a fixed port (0 would give each worker its own)" });
      });
    }
    listeners.forEach((l, i) => {
      const listener = (l ?? {}) as { address?: unknown; port?: unknown };
      claim(listener.address, listener.port, ["listeners", i, "port"]);
    });
    if (config.admin) claim(config.admin.address, config.admin.port, ["admin", "port"]);
    if (config.echo) claim(config.echo.address, config.echo.port, ["echo", "port"]);
  }, { when: () => true });

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** Auth provider names in a route's `auth` filters and `authorize` rules must be defined under `auth:`. */
function checkProviderNames(filters: unknown, known: readonly string[], report: (path: (string | number)[], message: string) => void): void {
  if (!Array.isArray(filters)) return;
  const check = (name: unknown, path: (string | number)[]) => {
    if (typeof name !== "string" || known.includes(name)) return;
    report(path, `unknown auth provider "${name}"${known.length ? ` (known: ${known.join(", ")})` : " (no auth providers are defined)"}`);
  };
  filters.forEach((f, j) => {
    if (!isRecord(f)) return;
    if (f.type === "auth" && Array.isArray(f.providers)) f.providers.forEach((name, k) => check(name, [j, "providers", k]));
    if (f.type === "authorize" && Array.isArray(f.rules)) {
      f.rules.forEach((rule, k) => {
        const providers = isRecord(rule) && isRecord(rule.when) ? rule.when.providers : undefined;
        if (Array.isArray(providers)) providers.forEach((name, m) => check(name, [j, "rules", k, "when", "providers", m]));
      });
    }
  });
}

/** Names a route's filters refer to (rate limits) must be defined at the top level. */
function checkFilterReferences(filters: unknown, rateLimits: unknown, issue: (path: (string | number)[], message: string) => void): void {
  if (!Array.isArray(filters)) return;
  const limits = rateLimits !== null && typeof rateLimits === "object" ? Object.keys(rateLimits) : [];
  filters.forEach((raw, j) => {
    const filter = (raw ?? {}) as { type?: unknown; limits?: unknown };
    if (filter.type !== "rate_limit" || !Array.isArray(filter.limits)) return;
    filter.limits.forEach((name, k) => {
      if (typeof name !== "string" || limits.includes(name)) return;
      issue([j, "limits", k], `unknown rate limit "${name}"${limits.length ? ` (known: ${limits.join(", ")})` : " (no rate_limits are defined)"}`);
    });
  });
}

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type Listener = z.infer<typeof ListenerSchema>;
export type AccessLogConfig = z.infer<typeof AccessLogSchema>;

/** The JSON Schema of the config file's input form, for editors (yaml-language-server). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}
