/**
 * Who sent the request: the direct peer, and — when that peer is a trusted proxy — the client it
 * forwarded for, read from X-Forwarded-For right to left, skipping trusted hops (nginx's realip
 * with `real_ip_recursive on`; Envoy's xff_num_trusted_hops counted by address instead of number).
 */
import { type Address, CidrSet, displayIp, parseForwardedIp, parseIp } from "./cidr.ts";

export interface Peer {
  /** The address of the TCP peer (IPv4-mapped addresses shown as IPv4). */
  readonly peerIp: string;
  /** The peer is one of the listener's trusted proxies: its X-Forwarded-* and X-Request-Id are believed. */
  readonly trusted: boolean;
  /** The client as far as can be told: the peer, or for a trusted peer the first untrusted hop of its X-Forwarded-For. */
  readonly clientIp: string;
}

export class TrustedProxies {
  private readonly set: CidrSet;

  constructor(cidrs: readonly string[]) {
    this.set = new CidrSet(cidrs);
  }

  /** `address` is the peer as Bun reports it; `xff` the request's X-Forwarded-For (read only for a trusted peer). */
  peer(address: string, xff: () => string | null): Peer {
    const peerIp = displayIp(address);
    if (this.set.size === 0) return { peerIp, trusted: false, clientIp: peerIp };
    const parsed = parseIp(address);
    if (parsed === undefined || !this.set.has(parsed)) return { peerIp, trusted: false, clientIp: peerIp };
    return { peerIp, trusted: true, clientIp: this.clientFrom(xff(), peerIp) };
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
      const text = hops[i]!.trim();
      const address: Address | undefined = parseForwardedIp(text);
      if (address === undefined) break;
      client = displayIp(text.startsWith("[") ? text.slice(1, text.indexOf("]")) : stripV4Port(text));
      if (!this.set.has(address)) break;
    }
    return client;
  }
}

function stripV4Port(text: string): string {
  const colon = text.indexOf(":");
  return colon !== -1 && colon === text.lastIndexOf(":") ? text.slice(0, colon) : text;
}
