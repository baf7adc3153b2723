/**
 * IP addresses and CIDR ranges (IPv4, IPv6, IPv4-mapped IPv6), compiled once into bigint
 * network/mask pairs so a per-request check is a few integer operations.
 */

/** The address as a 128-bit number (IPv4 as IPv4-mapped ::ffff:a.b.c.d), or undefined if it is not an IP. */
export function parseIp(text: string): bigint | undefined {
  let s = text;
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone !== -1) s = s.slice(0, zone);
  if (!s.includes(":")) {
    const v4 = parseIpv4(s);
    return v4 === undefined ? undefined : 0xffff_0000_0000n | v4;
  }
  // The last group may be a dotted IPv4 (::ffff:1.2.3.4).
  let tail: bigint | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.indexOf(".", lastColon) !== -1) {
    tail = parseIpv4(s.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const rest = halves.length === 2 ? (halves[1] === "" ? [] : halves[1]!.split(":")) : [];
  const missing = 8 - head.length - rest.length;
  if ((halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    value = (value << 16n) | BigInt(Number.parseInt(g, 16));
  }
  return tail === undefined ? value : (value & ~0xffff_ffffn) | tail;
}

function parseIpv4(s: string): bigint | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    value = (value << 8n) | BigInt(p);
  }
  return value;
}

const ALL = (1n << 128n) - 1n;

/** One range: the address's top `bits` must equal the network's. */
export interface Cidr {
  readonly network: bigint;
  readonly mask: bigint;
  readonly text: string;
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128); undefined if malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const address = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const v4 = !text.slice(0, slash === -1 ? undefined : slash).includes(":");
  const max = v4 ? 32 : 128;
  const bitsText = slash === -1 ? String(max) : text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(bitsText) || Number(bitsText) > max) return undefined;
  const bits = BigInt(Number(bitsText) + (v4 ? 96 : 0));
  const mask = bits === 0n ? 0n : (ALL << (128n - bits)) & ALL;
  return { network: address & mask, mask, text };
}

/** A compiled list of ranges; `has(ip)` is false for anything that is not an IP. */
export class CidrSet {
  private readonly ranges: readonly Cidr[];

  /** Throws on a malformed entry (config validation should have caught it; see CidrSchema). */
  constructor(entries: readonly string[]) {
    this.ranges = entries.map((e) => {
      const c = parseCidr(e);
      if (c === undefined) throw new Error(`not an IP address or CIDR range: ${e}`);
      return c;
    });
  }

  get size(): number {
    return this.ranges.length;
  }

  has(ip: string): boolean {
    if (this.ranges.length === 0) return false;
    const value = parseIp(ip);
    if (value === undefined) return false;
    for (const r of this.ranges) if ((value & r.mask) === r.network) return true;
    return false;
  }
}
