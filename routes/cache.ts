/** Admin API for the HTTP caches: purge by exact key, key prefix or tag (with a fleet, on every instance). */
import { Hono } from "hono";
import { PurgeRequestSchema } from "../src/cache/purge-schema.ts";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";

export function cacheRoutes(runtime: RuntimeRef): Hono {
  const app = new Hono();
  app.post("/cache/purge", async (c) => {
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      return c.json({ error: "bad_request", message: "the body must be JSON" }, 400);
    }
    const parsed = PurgeRequestSchema.safeParse(raw);
    if (!parsed.success) {
      return c.json({ error: "bad_request", message: parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ") }, 400);
    }
    const cache = runtime.current.caches.get(parsed.data.cache);
    if (cache === undefined) return c.json({ error: "not_found", message: `no cache named "${parsed.data.cache}"` }, 404);
    const { cache: _name, ...by } = parsed.data;
    const scope = runtime.current.cacheScope;
    if (scope === undefined) return c.json({ purged: await cache.purge(by) });
    // A fleet: 200 once every live instance applied it; 202 when some had not within ack_timeout
    // (they apply it when they read the log, and serve nothing older meanwhile); 503 when Redis
    // could not take it (applied on this instance only).
    const { purged, fleet } = await scope.purge(cache, by);
    const status = fleet === undefined || fleet.complete ? 200 : fleet.published ? 202 : 503;
    return c.json({ purged, fleet }, status);
  });
  return app;
}
