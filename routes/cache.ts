/** Admin API for the HTTP caches: purge by exact key, key prefix or tag. */
import { Hono } from "hono";
import { z } from "zod";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";

export const PurgeRequestSchema = z
  .strictObject({
    /** The cache's name under `caches`. */
    cache: z.string().min(1),
    /** An exact key, e.g. `http://shop.example/items/7?a=1` (every variant of it). */
    key: z.string().min(1).optional(),
    /** Every key starting with this, e.g. `http://shop.example/items/`. */
    prefix: z.string().min(1).optional(),
    /** Every entry stored with this tag (Surrogate-Key). */
    tag: z.string().min(1).optional(),
  })
  .refine((p) => [p.key, p.prefix, p.tag].filter((v) => v !== undefined).length === 1, { message: "give exactly one of key, prefix or tag" });

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
