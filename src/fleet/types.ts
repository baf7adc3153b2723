/** What the fleet reports: to a push, in GetConfig, and in GET /fleet. */
import type { CacheScope } from "../cache/cache.ts";
import type { FleetKeys } from "./keys.ts";
import type { PendingPurges } from "./pending-purges.ts";
import type { FleetRedis } from "./redis.ts";
import type { FleetConfig } from "./schema.ts";
import type { SyncFlag } from "./sync-flag.ts";
import type { InstanceIdentity } from "./instance.ts";

export type ConfigAnswerState = "pending" | "ack" | "nack";

/** One instance and the fleet config it runs, as GetConfig and push answers list them. */
export interface InstanceConfigState {
  instance: string;
  region: string | null;
  /** The latest fleet config version it answered (0: none). */
  fleet_version: number;
  /** Its answer to the fleet's current config: pending while it has not answered that version. */
  answer: ConfigAnswerState;
  /** On NACK: why. */
  message: string | null;
  /** Its own config version (switchyard_config_version there); null when unknown. */
  version: number | null;
  /** The fleet config version in force there (its last ACK); 0 when it runs its file's. */
  running_fleet_version: number;
}

/** The fleet's side of a push or PUT /config: the version it became and each live instance's answer so far. */
export interface FleetPushReport {
  version: number;
  instances: InstanceConfigState[];
}

/** GetConfig's fleet part. */
export interface FleetConfigView {
  /** The fleet config's version; 0 when none was pushed (each instance runs its file). */
  fleet_version: number;
  instances: InstanceConfigState[];
}

/** One instance in GET /fleet. */
export interface FleetInstance {
  id: string;
  region: string | null;
  /** Switchyard's version there. */
  version: string;
  /** When it started (ISO 8601). */
  started: string;
  /** Its last heartbeat (ISO 8601, Redis's clock). */
  last_heartbeat: string;
  /** Requests per second over its last heartbeat interval. */
  requests_per_second: number;
  config: { version: number; fleet_version: number };
  self: boolean;
}

export interface FleetView {
  /** This instance's id. */
  self: string;
  redis: { url: string; reachable: boolean; error?: string };
  fleet_version: number;
  /** Instances with a live heartbeat; with Redis unreachable, this one only (as it knows itself). */
  instances: FleetInstance[];
}

export interface FleetServices {
  readonly config: FleetConfig;
  readonly keys: FleetKeys;
  readonly redis: FleetRedis;
  readonly sync: SyncFlag;
  readonly self: InstanceIdentity;
  /** Purges applied here that wait for Redis (sent once it answers again). */
  readonly pending: PendingPurges;
  /** Purges that reach every instance; entries served only while purges are known (purge.on_redis_failure). */
  readonly cacheScope: CacheScope;
  dispose(): void;
}

