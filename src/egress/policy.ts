/**
 * Which destinations the egress proxy may reach, decided on the name asked for and on the
 * address it resolves to (the connection then goes to that very address, so a DNS answer cannot
 * change between the check and the connect). Loopback, link-local (169.254.169.254, the cloud
 * metadata service, among them), unspecified and multicast addresses are refused unless a `cidr`
 * rule names them: a name rule never unlocks them (SSRF). Pure.
 */
import { canonicalHostName } from "../security/host.ts";
import { CidrSet } from "../util/cidr.ts";
import type { EgressRule } from "./schema.ts";

/** Addresses a name rule can never reach. */
const SPECIAL = new CidrSet([
  "127.0.0.0/8", "::1/128", // loopback
  "169.254.0.0/16", "fe80::/10", // link-local
  "0.0.0.0/8", "::/128", // unspecified, "this network"
  "224.0.0.0/4", "255.255.255.255/32", "ff00::/8", // multicast, broadcast
]);

export function isSpecialAddress(ip: string): boolean {
  return SPECIAL.has(ip);
}

/** A destination as asked for: host lower-cased (no brackets, no trailing dot) and port. */
export interface Target {
  readonly host: string;
  readonly port: number;
}

/** Parses `host:port`, `[v6]:port` (CONNECT's authority form); undefined when malformed. */
export function parseAuthority(text: string, defaultPort?: number): Target | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/\s@]+))(?::(\d{1,5}))?$/.exec(text);
  if (m === null) return undefined;
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port === undefined || port < 1 || port > 65535) return undefined;
  const host = canonicalHostName((m[1] ?? m[2]!).toLowerCase());
  if (host === "") return undefined;
  return { host, port };
}

interface CompiledRule {
  readonly ports: ReadonlySet<number>;
  readonly name?: (host: string) => boolean;
  readonly range?: CidrSet;
}

export interface EgressPolicy {
  /** Whether a name rule allows this host and port (before resolving it). */
  nameAllowed(target: Target): boolean;
  /** Whether any address rule exists (then a name must be resolved to be judged). */
  readonly hasRanges: boolean;
  /** May the connection to `target` go to `ip`? */
  permits(target: Target, ip: string, nameAllowed: boolean): boolean;
}

export function compilePolicy(rules: readonly EgressRule[]): EgressPolicy {
  const compiled: CompiledRule[] = rules.map((r) => {
    const ports = new Set(r.ports);
    if (r.cidr !== undefined) return { ports, range: new CidrSet([r.cidr]) };
    const pattern = r.host!;
    if (pattern.startsWith("*.")) {
      const suffix = pattern.slice(1);
      return { ports, name: (host) => host.endsWith(suffix) && host.length > suffix.length };
    }
    return { ports, name: (host) => host === pattern };
  });
  const names = compiled.filter((r) => r.name !== undefined);
  const ranges = compiled.filter((r) => r.range !== undefined);
  return {
    hasRanges: ranges.length > 0,
    nameAllowed: (t) => names.some((r) => r.ports.has(t.port) && r.name!(t.host)),
    permits(t, ip, nameAllowed) {
      if (ranges.some((r) => r.ports.has(t.port) && r.range!.has(ip))) return true;
      return nameAllowed && !isSpecialAddress(ip);
    },
  };
}
