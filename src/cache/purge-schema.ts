/** The body of the admin API's POST /cache/purge. */
import { z } from "zod";

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

