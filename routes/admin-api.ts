/** The admin API (admin listener only): config in force (secrets redacted), clusters and their health, the route-test tool, drain. */
import { type Context, Hono } from "hono";
import { isAvailable } from "../src/upstream/health/state.ts";
import { diffConfig } from "../src/config/diff.ts";
import { ConfigError, configBaseDir, parseText, validateConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/schema.ts";
import { explainRequest } from "../src/runtime/explain.ts";
import { SwitchyardError } from "../src/util/errors.ts";
import type { ApplyConfig, RuntimeRef } from "../src/runtime/runtime-ref.ts";

/**
 * Keys whose (string) values are never shown: names of secrets, not every name that contains
 * "key" or "token" (a rate limit's `key: client_ip` and `token_type_hint` are settings). Header
 * names count too (a header rule or a composition call setting `x-api-key`, `x-auth-token`).
 */
const SECRET_KEY = /^(token|secret|client_secret|password|passphrase|(proxy-)?authorization|credentials?|apikey|private_key|sha256)$|(^|[-_])api[-_]?key$|[-_](secret|password|token)$/i;
/** The password in a URL's userinfo (`redis://user:pw@host`) is a secret wherever the URL sits. */
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i;
/** Maps whose every value is a secret, whatever its key (a collector's `x-honeycomb-team`, `dd-api-key` …). */
const SECRET_MAPS = new Set(["telemetry.tracing.headers"]);

export function redact(value: unknown, key = "", path = key): unknown {
  if (typeof value === "string") {
    if (SECRET_KEY.test(key) || SECRET_MAPS.has(path.slice(0, path.lastIndexOf(".")))) return "[redacted]";
    return value.replace(URL_PASSWORD, "$1[redacted]@");
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, key, path));
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k, path === "" ? k : `${path}.${k}`)]));
  return value;
}

export interface AdminApiOptions {
  runtime: RuntimeRef;
  /** Begins a graceful drain of the whole process (as SIGTERM does). */
  drain: () => void;
  /** Puts a validated config in force (every worker). */
  applyConfig?: ApplyConfig;
}

export function adminApiRoutes(options: AdminApiOptions): Hono {
  const app = new Hono();
  app.get("/config", (c) => c.json({ version: options.runtime.current.version, config: redact(options.runtime.current.config) }));
  app.get("/clusters", (c) => {
    const now = performance.now();
    const clusters = [...options.runtime.current.clusters.values()].map((cl) => {
      const available = new Set(cl.available());
      return {
        name: cl.name,
        balancer: cl.config.balancer.type,
        requests_active: cl.budget.active,
        connections_active: cl.limits.connections,
        breaker: cl.breaker?.state ?? null,
        endpoints: cl.endpoints.map((e) => ({
          address: e.address,
          weight: e.weight,
          available: available.has(e),
          // Healthy: passes its active checks (if any) and is not ejected by outlier detection.
          healthy: isAvailable(e.health, now),
          passes_checks: e.health.activeHealthy,
          ejections: e.health.ejections,
          ejected_for_ms: e.health.ejectedUntil > now ? Math.round(e.health.ejectedUntil - now) : 0,
          active: e.active,
        })),
      };
    });
    return c.json({ clusters });
  });
  // GET /route?method=GET&url=http://host/path&header=name:value … → which route and cluster.
  app.get("/route", (c) => {
    const target = c.req.query("url");
    let url: URL;
    try {
      url = new URL(target ?? "");
    } catch {
      return c.json({ error: "bad_request", message: "give url=http://host/path (absolute), and optionally method= and header=name:value" }, 400);
    }
    const headers = new Headers();
    for (const h of c.req.queries("header") ?? []) {
      const i = h.indexOf(":");
      if (i > 0) headers.append(h.slice(0, i).trim(), h.slice(i + 1).trim());
    }
    return c.json(explainRequest(options.runtime.current, c.req.query("method") ?? "GET", url, headers));
  });
  // PUT/POST /config: a whole config (YAML or JSON), validated with the same rules as the file;
  // swapped in atomically, or refused with every problem. ?dry_run=1 validates and shows the diff.
  const push = async (c: Context) => {
    const text = await c.req.text();
    // No file of its own: relative paths are resolved against the main config file's folder (said in every answer).
    const baseDir = configBaseDir(options.runtime.current.config);
    let next: Config;
    try {
      next = validateConfig("(pushed config)", parseText(c.req.header("content-type")?.includes("json") ? "pushed.json" : "pushed.yaml", text), process.env, { baseDir });
    } catch (e) {
      const problems = e instanceof ConfigError ? e.problems : [String(e)];
      options.runtime.noteChange("admin-api", "refused", problems);
      return c.json({ error: "invalid_config", message: "the config was refused; the one in force stays", problems, relative_paths_from: baseDir }, 422);
    }
    const changes = diffConfig(redact(options.runtime.current.config), redact(next));
    if (c.req.query("dry_run") === "1" || c.req.query("dry_run") === "true") return c.json({ valid: true, dry_run: true, changes, relative_paths_from: baseDir });
    if (!options.applyConfig) return c.json({ error: "unavailable", message: "config push is not enabled here" }, 503);
    try {
      const { version, workers, fleet } = await options.applyConfig(next, "admin-api");
      return c.json({ valid: true, version, workers, changes, relative_paths_from: baseDir, fleet });
    } catch (e) {
      // A fleet that cannot take it now: Redis down (503), another push came first (409). Nothing changed.
      if (e instanceof SwitchyardError && (e.status === 503 || e.status === 409)) return c.json({ error: e.code, message: e.message }, e.status);
      // Valid, yet its runtime could not be built (a file it names cannot be opened…).
      options.runtime.noteChange("admin-api", "refused", [(e as Error).message]);
      return c.json({ error: "invalid_config", message: "the config could not be put in force; the one in force stays", problems: [(e as Error).message], relative_paths_from: baseDir }, 422);
    }
  };
  app.put("/config", push);
  app.post("/config", push);
  app.post("/drain", (c) => {
    options.drain();
    return c.json({ draining: true }, 202);
  });
  return app;
}
