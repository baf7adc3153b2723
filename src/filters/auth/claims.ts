/**
 * Claims as rules see them: looked up by name (or a dotted path into nested objects, as
 * Keycloak's `realm_access.roles`), compared with an expected value or any of a list.
 * Shared by the providers' `required_claims` and the authorize filter's `claims` conditions.
 */
import type { ClaimsMatch } from "./claims-schema.ts";

export type Claims = Readonly<Record<string, unknown>>;

/** The claim `name`: the top-level key when there is one, else a dotted path into nested objects. */
export function claimAt(claims: Claims, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (!name.includes(".")) return undefined;
  let value: unknown = claims;
  for (const part of name.split(".")) {
    if (value === null || typeof value !== "object" || Array.isArray(value) || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * The values a claim holds: an array's scalar members; the words of a `scope`/`scp` string
 * (RFC 8693 §4.2: space-separated); otherwise the scalar itself.
 */
function valuesOf(name: string, value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value === "string" && (name === "scope" || name === "scp")) return value.split(" ").filter((w) => w !== "");
  return [value];
}

/**
 * A compiled claims condition: the name of the first claim that does not hold one of its expected
 * values, or undefined when all do.
 */
export function compileClaimsMatch(match: ClaimsMatch): (claims: Claims | undefined) => string | undefined {
  const entries = Object.entries(match).map(([name, expected]) => ({ name, expected: new Set<unknown>(Array.isArray(expected) ? expected : [expected]) }));
  if (entries.length === 0) return () => undefined;
  return (claims) => {
    for (const { name, expected } of entries) {
      if (claims === undefined || !valuesOf(name, claimAt(claims, name)).some((v) => expected.has(v))) return name;
    }
    return undefined;
  };
}

/**
 * A header value for a forwarded claim; undefined when absent or longer than 8 KiB. Arrays of
 * scalars are joined with commas, objects sent as JSON; anything outside visible ASCII is
 * percent-encoded (a signed claim is still client-chosen text: no control bytes in a header).
 */
export function claimHeaderValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  let text: string;
  if (typeof value === "string") text = value;
  else if (typeof value === "number" || typeof value === "boolean") text = String(value);
  else if (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number")) text = value.join(",");
  else text = JSON.stringify(value);
  if (!/^[\x20-\x7e]*$/.test(text)) text = encodeURIComponent(text);
  return text.length <= 8192 ? text : undefined;
}

/** The upstream headers of `forward` (claim → header) that the claims fill. */
export function forwardedHeaders(forward: readonly (readonly [claim: string, header: string])[], claims: Claims): [string, string][] {
  const out: [string, string][] = [];
  for (const [claim, header] of forward) {
    const value = claimHeaderValue(claimAt(claims, claim));
    if (value !== undefined) out.push([header, value]);
  }
  return out;
}
