/**
 * Who sent the request: the direct peer, and — when that peer is a trusted proxy — the client it
 * forwarded for, read from X-Forwarded-For right to left, skipping trusted hops (nginx's realip
 * with `real_ip_recursive on`; Envoy's xff_num_trusted_hops counted by address instead of number).
 */
import { CidrSet, ipv4Number, parseIp } from "../util/cidr.ts";

export interface Peer {
  /** The address of the TCP peer (IPv4-mapped addresses shown as IPv4). */
  readonly peerIp: string;
  /** The peer is one of the listener's trusted proxies: its X-Forwarded-* and X-Request-Id are believed. */
  readonly trusted: boolean;
  /** The client as far as can be told: the peer, or for a trusted peer the first untrusted hop of its X-Forwarded-For. */
  readonly clientIp: string;
}

/** Trust decisions remembered per peer address: load balancers are few and ask again and again. */
const MAX_REMEMBERED = 4096;

export class TrustedProxies {
  private readonly set: CidrSet;
  private readonly decided = new Map<string, boolean>();

  constructor(cidrs: readonly string[]) {
    this.set = new CidrSet(cidrs);
  }

  /** `address` is the peer as Bun reports it; X-Forwarded-For is read only for a trusted peer. */
  peer(address: string, headers: Headers): Peer {
    const peerIp = displayIp(address);
    if (this.set.size === 0 || !this.trusts(address)) return { peerIp, trusted: false, clientIp: peerIp };
    return { peerIp, trusted: true, clientIp: this.clientFrom(headers.get("x-forwarded-for"), peerIp) };
  }

  private trusts(address: string): boolean {
    let trusted = this.decided.get(address);
    if (trusted === undefined) {
      trusted = this.set.has(address);
      if (this.decided.size >= MAX_REMEMBERED) this.decided.clear();
      this.decided.set(address, trusted);
    }
    return trusted;
  }

  /**
   * Walks the chain from its right end while the current candidate is trusted. An element that is
   * not an address stops the walk: the trusted hop that passed it on is the last thing known.
   */
  private clientFrom(chain: string | null, peerIp: string): string {
    if (chain === null) return peerIp;
    const hops = chain.split(",");
    let client = peerIp;
    for (let i = hops.length - 1; i >= 0; i--) {
      const address = forwardedAddress(hops[i]!.trim());
      if (address === undefined) break;
      client = displayIp(address);
      if (!this.set.has(address)) break;
    }
    return client;
  }
}

/**
 * The address in an X-Forwarded-For element as proxies write it: bare, `[v6]`, `[v6]:port` or
 * `v4:port` (some load balancers add the port). Undefined when it holds no IP address.
 */
export function forwardedAddress(text: string): string | undefined {
  let address = text;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end === -1 || (end !== text.length - 1 && !/^:\d{1,5}$/.test(text.slice(end + 1)))) return undefined;
    address = text.slice(1, end);
  } else {
    const colon = text.indexOf(":");
    if (colon !== -1 && colon === text.lastIndexOf(":") && /^\d{1,5}$/.test(text.slice(colon + 1))) address = text.slice(0, colon);
  }
  if (ipv4Number(address) !== undefined) return address;
  return address.includes("%") || parseIp(address) === undefined ? undefined : address;
}

/** An IPv4-mapped address in its IPv4 form (for logs and X-Forwarded-For), else the text given. */
export function displayIp(text: string): string {
  if (!text.startsWith("::ffff:")) return text;
  return ipv4Number(text) !== undefined ? text.slice(7) : text;
}
