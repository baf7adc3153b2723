/**
 * Purges and invalidations across the fleet. The instance where one happens applies it to its own
 * caches first (HttpCache.purge: in force in every worker of the machine once it resolves), then
 * appends it to the purge log (a Redis stream) and waits — up to fleet.purge.ack_timeout — until
 * every other live instance (by heartbeat) says it has applied the log that far. Each instance's
 * agent reads the log as it grows and applies what others purged (agent.ts); one that was away
 * reads what it missed before it counts as in sync again, or, when it cannot tell what it missed,
 * acts as purge.on_log_lost says. Redis down: the purge is applied here only, and said so.
 */
import type { FleetPurgeReport, HttpCache, PurgeBy, PurgeOutcome } from "../cache/cache.ts";
import { metrics } from "../observe/metrics.ts";
import { compareIds } from "./keys.ts";
import { RedisUnavailable, redisScript } from "../util/redis-link.ts";
import type { PurgeRecord } from "./pending-purges.ts";
import type { SyncFlag } from "./sync-flag.ts";
import type { FleetKeys } from "./keys.ts";
import type { FleetRedis } from "./redis.ts";
import type { FleetServices } from "./types.ts";

// KEYS[1]: the log, KEYS[2]: the heartbeats, KEYS[3]: the purge generation. ARGV: log length,
// cache, kind, value, origin, heartbeat ttl (ms). Returns the entry's id, then the instances alive
// now (Redis's clock).
const PUBLISH = redisScript(`
local g = redis.call('INCR', KEYS[3])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 't', 'purge', 'cache', ARGV[2], 'kind', ARGV[3], 'value', ARGV[4], 'from', ARGV[5], 'g', g)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[2], now - tonumber(ARGV[6]), '+inf')
table.insert(live, 1, id)
return live
`);

export type PurgeKind = "key" | "prefix" | "tag";

export function purgeEntry(by: PurgeBy): [PurgeKind, string] | undefined {
  if (by.key !== undefined) return ["key", by.key];
  if (by.prefix !== undefined) return ["prefix", by.prefix];
  if (by.tag !== undefined) return ["tag", by.tag];
  return undefined;
}

/** Appends a purge to the log; returns its id, then the instances alive now. */
export async function publishPurge(fleet: FleetServices, purge: PurgeRecord): Promise<string[]> {
  const reply = await fleet.redis.eval("purge", PUBLISH, [fleet.keys.log, fleet.keys.instances, fleet.keys.purgeGeneration], [
    String(fleet.config.purge.log_max), purge.cache, purge.kind, purge.value, fleet.self.id, String(fleet.config.heartbeat.ttl),
  ]);
  return Array.isArray(reply) ? reply.map(String) : [];
}

export async function purgeEverywhere(fleet: FleetServices, cache: HttpCache, by: PurgeBy): Promise<PurgeOutcome> {
  const purged = await cache.purge(by);
  const entry = purgeEntry(by);
  if (entry === undefined) return { purged };
  const record: PurgeRecord = { cache: cache.name, kind: entry[0], value: entry[1] };
  // Behind purges that still wait for Redis: they go first, in order.
  if (fleet.pending.size > 0) await fleet.pending.flush();
  let reply: string[];
  try {
    if (fleet.pending.size > 0) throw new RedisUnavailable("down", "earlier purges still wait for redis");
    reply = await publishPurge(fleet, record);
  } catch (e) {
    if (!(e instanceof RedisUnavailable)) throw e;
    fleet.pending.add(record);
    metrics.fleetPurges.inc(["unpublished"]);
    return { purged, fleet: { published: false, complete: false, confirmed: [], missing: [], error: `applied on this instance; sent to the fleet when redis answers again (${e.message})` } };
  }
  const [id = "", ...live] = reply;
  const report = await awaitApplied(fleet, id, live.filter((i) => i !== fleet.self.id));
  metrics.fleetPurges.inc([report.complete ? "complete" : "incomplete"]);
  return { purged, fleet: report };
}

/** Waits until every instance of `others` has applied the log up to `id`, or ack_timeout. */
async function awaitApplied(fleet: FleetServices, id: string, others: string[]): Promise<FleetPurgeReport> {
  const deadline = performance.now() + fleet.config.purge.ack_timeout;
  const confirmed = new Set<string>();
  let error: string | undefined;
  let pause = 2;
  for (;;) {
    const pending = others.filter((o) => !confirmed.has(o));
    if (pending.length === 0) break;
    const left = deadline - performance.now();
    if (left <= 0) break;
    try {
      const applied = await fleet.redis.call("purge", "HMGET", [fleet.keys.applied, ...pending], Math.min(fleet.redis.timeoutMs, Math.ceil(left)));
      pending.forEach((o, i) => {
        const at = Array.isArray(applied) ? applied[i] : undefined;
        if (typeof at === "string" && compareIds(at, id) >= 0) confirmed.add(o);
      });
    } catch (e) {
      error = `confirmations could not be read: ${(e as Error).message}`;
      break;
    }
    if (confirmed.size === others.length) break;
    await Bun.sleep(Math.min(pause, Math.max(0, deadline - performance.now())));
    pause = Math.min(pause * 2, 20);
  }
  const missing = others.filter((o) => !confirmed.has(o));
  return { published: true, complete: missing.length === 0 && error === undefined, confirmed: [...confirmed], missing, ...(error === undefined ? {} : { error }) };
}

/**
 * Whether cached entries may be served here. While the agent reads the log (the in-sync flag):
 * yes. Past that — Redis lost, or this machine was frozen or cut off — the fleet's purge generation
 * is asked of Redis (once per 50 ms per process, within the timeout): equal to the applied one,
 * nothing was missed; another, this instance is back but behind, and serves no stored entry until
 * its agent has caught up; no answer, purge.on_redis_failure decides (serve: yes, bypass: no).
 */
export class PurgeGate {
  private memo: { until: number; ok: boolean } | undefined;
  private asking: Promise<boolean> | undefined;

  constructor(private readonly redis: FleetRedis, private readonly keys: FleetKeys, private readonly sync: SyncFlag, private readonly failOpen: boolean) {}

  servable(): boolean | Promise<boolean> {
    if (this.sync.inSync()) return true;
    const now = performance.now();
    if (this.memo !== undefined && now < this.memo.until) return this.memo.ok;
    this.asking ??= this.ask().finally(() => {
      this.asking = undefined;
    });
    return this.asking;
  }

  private async ask(): Promise<boolean> {
    let ok: boolean;
    try {
      const generation = Number((await this.redis.call("purge", "GET", [this.keys.purgeGeneration])) ?? 0);
      ok = generation === this.sync.appliedGeneration;
    } catch {
      ok = this.failOpen;
    }
    this.memo = { until: performance.now() + 50, ok };
    return ok;
  }
}
