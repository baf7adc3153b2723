/**
 * What every process of a fleet instance holds (bound at start, kept across reloads): the Redis
 * connection of its requests (idempotency records, purges sent), the keys, this instance's
 * identity, and the machine's in-sync flag. The agent (agent.ts, one process per machine) has
 * connections of its own.
 */
import type { HttpCache, PurgeBy, PurgeOutcome } from "../cache/cache.ts";
import type { CacheScope } from "../cache/serve.ts";
import { metrics } from "../observe/metrics.ts";
import { type InstanceIdentity, instance } from "./instance.ts";
import { type FleetKeys, fleetKeys } from "./keys.ts";
import { purgeEverywhere } from "./purge.ts";
import { FleetRedis } from "./redis.ts";
import type { FleetConfig } from "./schema.ts";
import { SyncFlag } from "./sync-flag.ts";

export interface FleetServices {
  readonly config: FleetConfig;
  readonly keys: FleetKeys;
  readonly redis: FleetRedis;
  readonly sync: SyncFlag;
  readonly self: InstanceIdentity;
  /** Purges that reach every instance; entries served only while purges are known (purge.on_redis_failure). */
  readonly cacheScope: CacheScope;
  dispose(): void;
}

export function createFleetServices(config: FleetConfig, self: InstanceIdentity = instance): FleetServices {
  const redis = new FleetRedis({ url: config.redis.url, timeoutMs: config.redis.timeout, retryIntervalMs: config.redis.retry_interval, role: "requests" });
  const sync = new SyncFlag(`${config.state_path}.sync`);
  const bypass = config.purge.on_redis_failure === "bypass";
  const services: FleetServices = {
    config,
    keys: fleetKeys(config.redis.key_prefix),
    redis,
    sync,
    self,
    cacheScope: {
      purge: (cache: HttpCache, by: PurgeBy): Promise<PurgeOutcome> => purgeEverywhere(services, cache, by),
      servable(cache: HttpCache): boolean {
        if (!bypass || sync.inSync()) return true;
        metrics.fleetCacheBypassed.inc([cache.name]);
        return false;
      },
    },
    dispose: () => redis.dispose(),
  };
  return services;
}
