import { z } from "zod";
import { DurationSchema, RegexSchema, TokenSchema } from "../../config/primitives.ts";

/** CORS (the Fetch standard's CORS protocol): preflights answered here, headers added to every response. */
export const CorsFilterSchema = z
  .strictObject({
    type: z.literal("cors"),
    /** Origins allowed exactly (`https://app.example.com`), or `*` for any (not with allow_credentials). */
    allow_origins: z.array(z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, "must be * or scheme://host[:port] without a path")).default([]),
    /** Origins allowed by regex, always matched against the whole origin (anchored for you: `https://[a-z0-9-]+\.example\.com`). */
    allow_origin_regex: z.array(RegexSchema).default([]),
    /** Methods a preflight may ask for. Default GET, HEAD, POST. */
    allow_methods: z.array(z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method")).default(["GET", "HEAD", "POST"]),
    /** Request headers a preflight may ask for (case-insensitive); `*` for any. */
    allow_headers: z.array(z.union([TokenSchema, z.literal("*")])).default([]),
    /** Response headers the browser may show to scripts. */
    expose_headers: z.array(TokenSchema).default([]),
    /** Let the browser send cookies / credentials. Default false. */
    allow_credentials: z.boolean().default(false),
    /** How long the browser may cache a preflight answer. Default 10m. */
    max_age: DurationSchema.prefault("10m"),
  })
  .refine((c) => c.allow_origins.length + c.allow_origin_regex.length > 0, { message: "give allow_origins or allow_origin_regex", path: ["allow_origins"] })
  .refine((c) => !(c.allow_credentials && c.allow_origins.includes("*")), { message: "* cannot be used with allow_credentials (the Fetch standard forbids it)", path: ["allow_origins"] });

export type CorsFilterConfig = z.infer<typeof CorsFilterSchema>;
