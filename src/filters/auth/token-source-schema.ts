/** Where a credential travels (token-source.ts reads and strips it). */
import { z } from "zod";
import { TokenSchema } from "../../config/primitives.ts";

export const TokenSourceSchema = z
  .strictObject({
    /** A request header, e.g. `authorization` (with `scheme: Bearer`) or `x-auth-token`. */
    header: TokenSchema.optional(),
    /** With `header`: the auth scheme before the token (`Bearer`), matched case-insensitively. None: the whole header value is the token. */
    scheme: TokenSchema.optional(),
    /** A cookie name. */
    cookie: TokenSchema.optional(),
    /** A query parameter name (RFC 6750 §2.3 calls it `access_token`; discouraged: URLs end up in logs). */
    query: TokenSchema.optional(),
  })
  .refine((s) => [s.header, s.cookie, s.query].filter((v) => v !== undefined).length === 1, { message: "give exactly one of header, cookie or query" })
  .refine((s) => s.scheme === undefined || s.header !== undefined, { message: "scheme goes with header", path: ["scheme"] });

export type TokenSource = z.infer<typeof TokenSourceSchema>;

/** The default: `Authorization: Bearer <token>` (RFC 6750 §2.1). */
export const BEARER_HEADER = { header: "authorization", scheme: "Bearer" } as const;
