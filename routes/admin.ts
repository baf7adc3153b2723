/** The admin listener's app: health, metrics, the admin API, the config service, cache purge. Never on the public port by default. */
import { timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { toOpenMetrics } from "../src/observe/registry.ts";
import { metricsText } from "../src/observe/worker-metrics.ts";
import type { RolloutController } from "../src/rollout/controller.ts";
import type { ApplyConfig, RuntimeRef } from "../src/runtime/runtime-ref.ts";
import { adminApiRoutes } from "./admin-api.ts";
import { cacheRoutes } from "./cache.ts";
import type { ConfigServiceOptions } from "./config-service.ts";
import { rolloutRoutes } from "./rollouts.ts";
import { statusRoutes } from "./status.ts";
import { type FleetReader, fleetRoutes } from "./fleet.ts";
import { healthRoutes, type HealthOptions } from "./health.ts";

/** The config service's path (config-service.ts checks it against the generated service's name). */
export const CONFIG_SERVICE_PATH = "/switchyard.config.v1.ConfigService/";

/** The config service (Connect, protobuf) is loaded with its first request: a proxy no control plane talks to never loads it. */
function configService(options: ConfigServiceOptions): (request: Request) => Response | Promise<Response> {
  let app: Hono | undefined;
  return (request) => {
    app ??= (require("./config-service.ts") as typeof import("./config-service.ts")).configServiceRoutes(options);
    return app.fetch(request);
  };
}

/** Connect clients read a Connect error (code unauthenticated), not our JSON error shape. */
function connectUnauthenticated(message: string): Response {
  const { connectErrorResponse } = require("./config-service.ts") as typeof import("./config-service.ts");
  const { Code } = require("@connectrpc/connect") as typeof import("@connectrpc/connect");
  return connectErrorResponse(Code.Unauthenticated, message, { "www-authenticate": "Bearer" });
}

export interface AdminOptions extends HealthOptions {
  runtime?: RuntimeRef;
  /** When set, everything but /healthz and /readyz needs `Authorization: Bearer <token>`. */
  token?: string;
  drain?: () => void;
  applyConfig?: ApplyConfig;
  /** Rollouts and SLOs (GET /rollouts, /slos; POST /rollouts/{route}/{action}). */
  rollouts?: RolloutController;
  /** With a fleet: its view (GET /fleet, GetConfig's instances); read when asked (the agent starts after the listener). */
  fleet?: () => FleetReader | undefined;
}

export function adminRoutes(options: AdminOptions): Hono {
  const app = new Hono();
  app.route("/", healthRoutes(options));
  if (options.token !== undefined) {
    const expected = `Bearer ${options.token}`;
    app.use("*", async (c, next) => {
      // The status page (a browser cannot send a bearer header) may carry it as ?token=.
      const fromQuery = c.req.path === "/status" ? c.req.query("token") : undefined;
      const given = c.req.header("authorization") ?? (fromQuery !== undefined ? `Bearer ${fromQuery}` : "");
      // Constant-time comparison: the token must not leak through timing.
      const a = Buffer.from(given);
      const b = Buffer.from(expected);
      const ok = a.length === b.length && timingSafeEqual(a, b);
      if (ok) return await next();
      const message = "the admin API needs Authorization: Bearer <admin.token>";
      if (c.req.path.startsWith(CONFIG_SERVICE_PATH)) return connectUnauthenticated(message);
      return c.json({ error: "unauthorized", message }, 401, { "www-authenticate": "Bearer" });
    });
  }
  if (options.runtime) {
    app.route("/", cacheRoutes(options.runtime));
    app.route("/", statusRoutes(options.runtime));
    app.route("/", fleetRoutes(options.runtime, options.fleet));
    app.route("/", adminApiRoutes({ runtime: options.runtime, drain: options.drain ?? (() => process.kill(process.pid, "SIGTERM")), applyConfig: options.applyConfig }));
    const service = configService({ runtime: options.runtime, applyConfig: options.applyConfig, fleet: options.fleet });
    app.all(`${CONFIG_SERVICE_PATH}*`, (c) => service(c.req.raw));
  }
  if (options.rollouts) app.route("/", rolloutRoutes(options.rollouts));
  // Prometheus text (0.0.4), or OpenMetrics 1.0 when the scraper asks for it.
  app.get("/metrics", async (c) => {
    const text = await metricsText();
    if ((c.req.header("accept") ?? "").includes("application/openmetrics-text")) {
      return new Response(toOpenMetrics(text), { headers: { "content-type": "application/openmetrics-text; version=1.0.0; charset=utf-8" } });
    }
    return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
  });
  app.notFound((c) => c.json({ error: "not_found", message: `no admin endpoint ${c.req.method} ${c.req.path}` }, 404));
  return app;
}
