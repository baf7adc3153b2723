/**
 * IP addresses and CIDR ranges, pure. Every address is held as IPv6 (four 32-bit words), IPv4 as
 * its IPv4-mapped form (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), so one comparison covers both families
 * and a dual-stack listener's `::ffff:10.0.0.1` peer matches `10.0.0.0/8`.
 */

export type Address = readonly [number, number, number, number];

/**
 * Dotted decimal as one 32-bit word; no leading zeros (inet_aton would read `010` as octal: the
 * ambiguity is refused). A plain loop: this runs per request for trusted_proxies.
 */
function ipv4Word(text: string): number | undefined {
  let word = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return undefined;
      octet = octet * 10 + (c - 0x30);
      if (octet > 255) return undefined;
      digits++;
    } else if (c === 0x2e && digits > 0 && dots < 3) {
      word = (word << 8) | octet;
      octet = 0;
      digits = 0;
      dots++;
    } else return undefined;
  }
  return dots === 3 && digits > 0 ? ((word << 8) | octet) >>> 0 : undefined;
}

/** RFC 4291 §2.2 text forms, `::` and a trailing dotted IPv4 included; no zone id. */
function ipv6Groups(text: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (i === pieces.length - 1 && p.includes(".")) {
        const v4 = ipv4Word(p);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  // A trailing IPv4 may only close the address, so it cannot sit before "::".
  if (halves[0]!.includes(".") || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/** Parses an IPv4 or IPv6 address (no brackets, no port); undefined when it is not one. */
export function parseIp(text: string): Address | undefined {
  const v4 = ipv4Word(text);
  if (v4 !== undefined) return [0, 0, 0xffff, v4];
  const g = ipv6Groups(text);
  if (g === undefined) return undefined;
  return [((g[0]! << 16) | g[1]!) >>> 0, ((g[2]! << 16) | g[3]!) >>> 0, ((g[4]! << 16) | g[5]!) >>> 0, ((g[6]! << 16) | g[7]!) >>> 0];
}

/**
 * An X-Forwarded-For element as proxies write it: a bare address, `[v6]`, `[v6]:port` or
 * `v4:port` (some load balancers add the port). Undefined when it is none of these.
 */
export function parseForwardedIp(text: string): Address | undefined {
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end === -1 || (end !== text.length - 1 && !/^:\d{1,5}$/.test(text.slice(end + 1)))) return undefined;
    return parseIp(text.slice(1, end));
  }
  const colon = text.indexOf(":");
  if (colon !== -1 && colon === text.lastIndexOf(":") && /^\d{1,5}$/.test(text.slice(colon + 1))) return parseIp(text.slice(0, colon));
  return parseIp(text);
}

/** An IPv4-mapped address in its IPv4 text form (for logs and X-Forwarded-For), else the text given. */
export function displayIp(text: string): string {
  return text.startsWith("::ffff:") && ipv4Word(text.slice(7)) !== undefined ? text.slice(7) : text;
}

interface Range {
  readonly net: Address;
  readonly mask: Address;
}

export class CidrSet {
  private readonly ranges: Range[];

  /** `cidrs` must be valid (see `parseCidr`); the schema checks them at load time. */
  constructor(cidrs: readonly string[]) {
    this.ranges = cidrs.map((c) => {
      const range = parseCidr(c);
      if (typeof range === "string") throw new Error(`${c}: ${range}`);
      return range;
    });
  }

  get size(): number {
    return this.ranges.length;
  }

  has(address: Address): boolean {
    for (const r of this.ranges) {
      if (((address[0] & r.mask[0]) >>> 0) === r.net[0] && ((address[1] & r.mask[1]) >>> 0) === r.net[1]
        && ((address[2] & r.mask[2]) >>> 0) === r.net[2] && ((address[3] & r.mask[3]) >>> 0) === r.net[3]) return true;
    }
    return false;
  }
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host). A problem is returned as text. */
export function parseCidr(text: string): Range | string {
  const slash = text.indexOf("/");
  const address = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (address === undefined) return "not an IPv4 or IPv6 address";
  const v4 = slash === -1 ? ipv4Word(text) !== undefined : ipv4Word(text.slice(0, slash)) !== undefined;
  const max = v4 ? 32 : 128;
  const bitsText = slash === -1 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max) return `the prefix length must be 0 to ${max}`;
  // An IPv4 range covers the mapped block: its prefix counts from bit 96.
  const bits = Number(bitsText) + (v4 ? 96 : 0);
  const mask = [0, 1, 2, 3].map((i) => {
    const n = Math.max(0, Math.min(32, bits - i * 32));
    return n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  }) as unknown as Address;
  const net = address.map((w, i) => (w & mask[i]!) >>> 0) as unknown as Address;
  if (net.some((w, i) => w !== address[i])) return "host bits are set (give the network address, e.g. 10.0.0.0/8)";
  return { net, mask };
}
