/**
 * The listener settings of the request guard (src/security/guard.ts): limits on the request head,
 * path normalization, header-name policy and trusted proxies. Spread into the listener schema.
 */
import { z } from "zod";
import { CidrSchema, SizeSchema } from "../config/primitives.ts";

export const PathNormalizationSchema = z.strictObject({
  /** Collapse runs of slashes (`//admin` → `/admin`). Default true. */
  merge_slashes: z.boolean().default(true),
  /**
   * `%2F` and `%5C` in the path: `reject` (400), `keep` (passed on encoded, upper-cased; routes see
   * them encoded) or `unescape` (decoded to `/` before routing). Default reject.
   */
  escaped_slashes: z.enum(["reject", "keep", "unescape"]).default("reject"),
  /** `%25` followed by two hex digits (`%252e`, a second layer of encoding): `reject` (400) or `keep`. Default reject. */
  double_encoding: z.enum(["reject", "keep"]).default("reject"),
});

/** Fields added to each listener (flat, beside `max_request_body`). */
export const GuardShape = {
  /**
   * Request line plus header fields, in bytes (name + value + 4 per field, as Bun presents them:
   * repeated fields joined); more gets 431. Default 16KiB — also Bun's own ceiling (its plain 431),
   * so only a lower value changes anything.
   */
  max_header_bytes: SizeSchema.prefault("16KiB"),
  /** Header fields (distinct names; repeated ones are joined by Bun); more gets 431. Default 100. */
  max_headers: z.number().int().min(1).max(1000).default(100),
  /** Path plus query, in bytes; longer gets 414. Default 8KiB (Bun answers 431 itself above 16KiB). */
  max_url_length: SizeSchema.prefault("8KiB"),
  /**
   * Header names with `_`, which CGI-style backends confuse with `-` (`X_Auth_User` reads as
   * `X-Auth-User`): `drop` them, `reject` the request (400), or `allow` them. Default drop.
   */
  headers_with_underscores: z.enum(["drop", "reject", "allow"]).default("drop"),
  path_normalization: PathNormalizationSchema.prefault({}),
  /**
   * Peers (CIDRs, IPv4 and IPv6; a bare address is one host) whose X-Forwarded-For/-Proto/-Host,
   * X-Request-Id and X-Forwarded-Client-Cert are believed; the client IP is then the first
   * untrusted hop of X-Forwarded-For from the right. From anyone else those fields are replaced
   * or removed. Default none.
   */
  trusted_proxies: z.array(CidrSchema).default([]),
};

export type PathNormalization = z.infer<typeof PathNormalizationSchema>;
const GuardSchema = z.strictObject(GuardShape);
export type GuardConfig = z.infer<typeof GuardSchema>;
