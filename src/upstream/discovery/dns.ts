/** DNS discovery: A/AAAA via the system resolver, SRV via node:dns (optionally against given servers). */
import { promises as dns } from "node:dns";
import type { DiscoveryConfig, EndpointSpec } from "./schema.ts";

type DnsConfig = Extract<DiscoveryConfig, { type: "dns" }>;
type SrvConfig = Extract<DiscoveryConfig, { type: "srv" }>;

const bracket = (address: string) => (address.includes(":") ? `[${address}]` : address);

export async function resolveDns(config: DnsConfig): Promise<EndpointSpec[]> {
  const found = await dns.lookup(config.host, { all: true, family: config.family });
  const unique = [...new Set(found.map((a) => a.address))].sort();
  return unique.map((address) => ({ url: `${config.scheme}://${bracket(address)}:${config.port}`, weight: 1 }));
}

export async function resolveSrv(config: SrvConfig): Promise<EndpointSpec[]> {
  const resolver = new dns.Resolver({ timeout: 2000, tries: 2 });
  if (config.servers) resolver.setServers(config.servers);
  const records = await resolver.resolveSrv(config.name);
  if (records.length === 0) return [];
  const best = Math.min(...records.map((r) => r.priority));
  return records
    .filter((r) => r.priority === best)
    .sort((a, b) => (a.name === b.name ? a.port - b.port : a.name < b.name ? -1 : 1))
    .map((r) => ({ url: `${config.scheme}://${r.name.replace(/\.$/, "")}:${r.port}`, weight: Math.max(1, Math.min(1000, r.weight)) }));
}
