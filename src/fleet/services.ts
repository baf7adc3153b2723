/**
 * What every process of a fleet instance holds (bound at start, kept across reloads): the Redis
 * connection of its requests (idempotency records, purges sent), the keys, this instance's
 * identity, and the machine's in-sync flag. The agent (agent.ts, one process per machine) has
 * connections of its own.
 */
import type { HttpCache, PurgeBy, PurgeOutcome } from "../cache/cache.ts";
import { metrics } from "../observe/metrics.ts";
import { type InstanceIdentity, instance } from "./instance.ts";
import { type FleetKeys, fleetKeys } from "./keys.ts";
import { PendingPurges } from "./pending-purges.ts";
import { publishPurge, PurgeGate, purgeEverywhere } from "./purge.ts";
import { FleetRedis } from "./redis.ts";
import type { FleetConfig } from "./schema.ts";
import { SyncFlag } from "./sync-flag.ts";
import type { CacheScope } from "../cache/cache.ts";
import type { FleetServices } from "./types.ts";

export function createFleetServices(config: FleetConfig, self: InstanceIdentity = instance): FleetServices {
  const redis = new FleetRedis({ url: config.redis.url, timeoutMs: config.redis.timeout, retryIntervalMs: config.redis.retry_interval, role: "requests" });
  const sync = new SyncFlag(`${config.state_path}.sync`);
  const keys = fleetKeys(config.redis.key_prefix);
  const gate = new PurgeGate(redis, keys, sync, config.purge.on_redis_failure === "serve");
  const services: FleetServices = {
    config,
    keys,
    redis,
    sync,
    self,
    pending: new PendingPurges(async (purge) => void (await publishPurge(services, purge)), config.redis.retry_interval),
    cacheScope: {
      purge: (cache: HttpCache, by: PurgeBy): Promise<PurgeOutcome> => purgeEverywhere(services, cache, by),
      servable(cache: HttpCache): boolean | Promise<boolean> {
        const ok = gate.servable();
        const count = (yes: boolean) => {
          if (!yes) metrics.fleetCacheBypassed.inc([cache.name]);
          return yes;
        };
        return typeof ok === "boolean" ? count(ok) : ok.then(count);
      },
    },
    dispose() {
      services.pending.dispose();
      redis.dispose();
    },
  };
  return services;
}
