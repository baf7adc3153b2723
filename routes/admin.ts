/** The admin listener's app: health now; the admin API mounts here too. */
import { Hono } from "hono";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";
import { registry } from "../src/observe/metrics.ts";
import { cacheRoutes } from "./cache.ts";
import { healthRoutes, type HealthOptions } from "./health.ts";

export function adminRoutes(options: HealthOptions, runtime?: RuntimeRef): Hono {
  const app = new Hono();
  app.route("/", healthRoutes(options));
  if (runtime) app.route("/", cacheRoutes(runtime));
  // Prometheus text format (0.0.4).
  app.get("/metrics", () => new Response(registry.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } }));
  app.notFound((c) => c.json({ error: "not_found", message: `no admin endpoint ${c.req.method} ${c.req.path}` }, 404));
  return app;
}
