/**
 * What a request's bucket is keyed by, and which tier it is in — compiled once per limit into
 * small functions of the context. Identity comes from what the route's auth filter accepted
 * (`ctx.auth`), never from a header the client could pick, unless the config names that header.
 */
import type { ProxyContext } from "../../proxy/context.ts";
import { parseIp } from "../../util/cidr.ts";
import type { KeyPart, RateLimitConfig, TierSelector } from "./schema.ts";

/** A request's key: never "" (an empty value counts as missing), undefined when missing. */
export type KeyOf = (ctx: ProxyContext) => string | undefined;

/** Keys longer than this are stored as a digest, so a huge header value costs a bucket no more than a short one. */
const MAX_RAW_KEY = 96;

/** A claim's value as a key: strings and numbers (and booleans); objects and lists name no bucket. */
function claimValue(ctx: ProxyContext, name: string): string | undefined {
  const value = ctx.auth?.claims?.[name];
  if (typeof value === "string") return value === "" ? undefined : value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return undefined;
}

/**
 * The client address as a bucket name: IPv4 (also IPv4-mapped IPv6) as itself, IPv6 as its
 * `prefix`-bit network (`2001:db8:0:7::/64`), so every address of one /64 shares the bucket.
 */
export function clientIpKey(ip: string, prefix: number): string | undefined {
  if (ip === "") return undefined;
  if (!ip.includes(":")) return ip;
  const value = parseIp(ip);
  if (value === undefined) return ip;
  if (value >> 32n === 0xffffn) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  const network = prefix >= 128 ? value : (value >> BigInt(128 - prefix)) << BigInt(128 - prefix);
  const groups = Array.from({ length: 8 }, (_, i) => ((network >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${groups.join(":")}/${prefix}`;
}

function compilePart(part: KeyPart, ipv6Prefix: number): KeyOf {
  if (part === "client_ip") return (ctx) => clientIpKey(ctx.clientIp, ipv6Prefix);
  if (part === "route") return (ctx) => ctx.route?.name;
  if (part === "api_key") return (ctx) => (ctx.auth?.kind === "api_key" ? ctx.auth.subject || undefined : undefined);
  if ("header" in part) {
    const name = part.header.toLowerCase();
    return (ctx) => ctx.headers.get(name) || undefined;
  }
  const claim = part.claim;
  return (ctx) => claimValue(ctx, claim);
}

function bounded(key: string): string {
  if (key.length <= MAX_RAW_KEY) return key;
  // NUL first: no raw key (a header value, an address) can equal a digest.
  return `\u0000#${new Bun.CryptoHasher("sha256").update(key).digest("base64url")}`;
}

/** The key's value for a request, or undefined when the request lacks (any part of) it. */
export function compileKey(key: RateLimitConfig["key"], ipv6Prefix = 64): KeyOf {
  if (!Array.isArray(key)) {
    const one = compilePart(key, ipv6Prefix);
    return (ctx) => {
      const value = one(ctx);
      return value === undefined ? undefined : bounded(value);
    };
  }
  const parts = key.map((part) => compilePart(part, ipv6Prefix));
  return (ctx) => {
    const values: string[] = [];
    for (const part of parts) {
      const value = part(ctx);
      if (value === undefined) return undefined;
      values.push(value);
    }
    // NUL cannot occur in a header value, an address or a config name: the parts cannot run together.
    return bounded(values.join("\u0000"));
  };
}

/** The request's tier name (any string; the limiter maps unknown names to the default tier). */
export function compileTierOf(from: TierSelector): (ctx: ProxyContext) => string | undefined {
  if (from === "auth_tier") return (ctx) => ctx.auth?.tier;
  const claim = from.claim;
  return (ctx) => claimValue(ctx, claim);
}
