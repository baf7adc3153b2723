import { z } from "zod";
import { parseCidr } from "../util/cidr.ts";

/** Durations are strings such as `250ms`, `5s`, `2m`, `1h` (or `0`, which disables). Parsed to milliseconds. */
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  const m = DURATION_RE.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

export const DurationSchema = z
  // A bare 0 (as YAML reads `0`) means "disabled", like the string "0".
  .preprocess((v) => (v === 0 ? "0" : v), z.string({ error: "must be a duration string such as 250ms, 5s, 2m (or 0)" }))
  .describe("A duration: a number and a unit, ms, s, m or h (e.g. `250ms`, `5s`); `0` disables")
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: "custom", message: `"${text}" is not a duration (use e.g. 250ms, 5s, 2m, 1h, or 0)` });
      return z.NEVER;
    }
    // Timers take at most 2^31−1 ms; longer ones fire at once.
    if (ms > MAX_TIMER_MS) {
      ctx.addIssue({ code: "custom", message: `"${text}" is too long (at most about 24 days)` });
      return z.NEVER;
    }
    return ms;
  });

const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration that must be more than 0 (intervals, windows, timeouts of checks). */
export const PositiveDurationSchema = DurationSchema.refine((ms) => ms > 0, "must be more than 0");

/** Sizes are strings such as `512B`, `64KiB`, `1MiB`, `1GB` (SI units are powers of 1000). Parsed to bytes. */
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/;
const SIZE_UNITS: Record<string, number> = {
  B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3,
};

export function parseSize(text: string): number | undefined {
  const m = SIZE_RE.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2] ?? "B"]!);
}

export const SizeSchema = z
  .string()
  .describe("A size: a number and a unit, B, KB, KiB, MB, MiB, GB or GiB (e.g. `64KiB`)")
  .transform((text, ctx) => {
    const bytes = parseSize(text);
    if (bytes === undefined) {
      ctx.addIssue({ code: "custom", message: `"${text}" is not a size (use e.g. 512B, 64KiB, 1MiB)` });
      return z.NEVER;
    }
    return bytes;
  });

/** A TCP port; a numeric string is accepted too, so `${PORT}` can fill it. */
export const PortSchema = z.union([
  z.number().int().min(0).max(65535),
  z.string().regex(/^\d{1,5}$/, "must be a port number").transform(Number).pipe(z.number().int().min(0).max(65535)),
]);

/** A regular expression, compiled at load time so a bad one is a config error, not a runtime one. */
export const RegexSchema = z.string().superRefine((text, ctx) => {
  try {
    new RegExp(text);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: `invalid regular expression: ${(e as Error).message}` });
  }
});

/** A header or query-parameter name (RFC 9110 §5.1 token). */
export const TokenSchema = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, "must be a valid header/parameter name (RFC 9110 token)");

/** An IP address or CIDR range (`10.0.0.0/8`, `2001:db8::/32`, `127.0.0.1`). */
export const CidrSchema = z.string().refine((s) => parseCidr(s) !== undefined, "must be an IP address or a CIDR range like 10.0.0.0/8 or 2001:db8::/32");

/**
 * A name for something the config defines (a cluster, a cache, a provider) and refers to
 * elsewhere. `__proto__` would be dropped silently by the record parser, so it is refused.
 */
export function nameSchema(what: string) {
  return z.string().regex(/^[A-Za-z0-9_.-]+$/, `${what} names are letters, digits, _ . or -`).refine((n) => n !== "__proto__", `"__proto__" cannot be a ${what} name`);
}
