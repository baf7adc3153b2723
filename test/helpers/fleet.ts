/**
 * A fleet on loopback: N Switchyard processes started through the CLI, each with its own config
 * folder (its own cache file, fleet state file and admin port) and its own FLY_MACHINE_ID and
 * FLY_REGION, all sharing one redis-server.
 */
import { writeFileSync } from "node:fs";
import type { ConfigInput } from "../../src/config/schema.ts";
import { type ProxyProcess, spawnProxy } from "./cli.ts";
import { tempDir, waitFor } from "./tmp.ts";
import { freePort } from "./upstream.ts";

export interface FleetMember {
  readonly id: string;
  readonly region: string;
  readonly dir: ReturnType<typeof tempDir>;
  readonly configFile: string;
  proxy: ProxyProcess;
  /** The admin listener's origin. */
  readonly admin: string;
  /** Starts it again (after stop or kill) on the same config and state. */
  restart(): Promise<ProxyProcess>;
}

export type FleetConfigFor = (member: { index: number; id: string; admin: number; dir: string }) => ConfigInput;

/** The common part of a fleet member's config: its admin port, a fleet on `redisUrl`, no access log on stdout noise. */
export function memberConfig(redisUrl: string, admin: number, extra: Partial<ConfigInput> & Pick<ConfigInput, "routes" | "clusters">, fleet: Record<string, unknown> = {}): ConfigInput {
  return {
    listeners: [{ address: "127.0.0.1", port: 0 }],
    admin: { address: "127.0.0.1", port: admin },
    shutdown: { drain_timeout: "1s" },
    access_log: { enabled: false },
    ...extra,
    fleet: { redis: { url: redisUrl, timeout: "200ms", retry_interval: "200ms" }, heartbeat: { interval: "200ms", ttl: "1s" }, ...fleet },
  } as ConfigInput;
}

export async function startFleet(count: number, configFor: FleetConfigFor, regions = ["ams", "iad", "sin"]): Promise<FleetMember[]> {
  const members = Array.from({ length: count }, (_, index) => {
    const id = `machine-${index}`;
    const region = regions[index % regions.length]!;
    const dir = tempDir(`switchyard-fleet-${index}-`);
    const admin = freePort();
    const configFile = dir.file("switchyard.json");
    writeFileSync(configFile, JSON.stringify(configFor({ index, id, admin, dir: dir.path }), null, 2));
    const env = { FLY_MACHINE_ID: id, FLY_REGION: region };
    const member: FleetMember = {
      id, region, dir, configFile, admin: `http://127.0.0.1:${admin}`,
      proxy: undefined as unknown as ProxyProcess,
      async restart() {
        member.proxy = await spawnProxy(configFile, env);
        return member.proxy;
      },
    };
    return member;
  });
  await Promise.all(members.map((m) => m.restart()));
  // Every member sees every other by its heartbeat.
  await waitFor(`${count} instances in /fleet`, async () => {
    // (With workers the admin listener is worker 0's, which may start after another worker.)
    const views = await Promise.all(members.map(async (m) => (await fetch(`${m.admin}/fleet`).then((r) => r.json(), () => ({ instances: [] }))) as { instances: unknown[] }));
    return views.every((v) => v.instances.length === count);
  }, 10_000);
  return members;
}

export async function stopFleet(members: FleetMember[]): Promise<void> {
  await Promise.all(members.map((m) => m.proxy.stop().catch(() => 0)));
  for (const m of members) m.dir.cleanup();
}
