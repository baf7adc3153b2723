/** Admin API for the HTTP caches: purge by exact key, key prefix or tag. */
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
    const purged = await cache.purge(parsed.data);
    return c.json({ purged });
  });
  return app;
}
