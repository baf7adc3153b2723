/** Every key the fleet keeps in Redis, under `fleet.redis.key_prefix`. */
export interface FleetKeys {
  /** A random value set by the first instance to find the key missing: a new one means Redis lost its data. */
  readonly epoch: string;
  /** Stream: purges and config announcements, in order (the purge log). */
  readonly log: string;
  /** Counter: purges ever logged (since Redis last lost its data); each purge entry carries its value. */
  readonly purgeGeneration: string;
  /** Hash: instance → the last log entry it applied (purges are confirmed by it). */
  readonly applied: string;
  /** Sorted set: instance → the time (Redis's clock, ms) of its last heartbeat. */
  readonly instances: string;
  /** String (JSON, expires with the heartbeat ttl): an instance's heartbeat. */
  readonly instancePrefix: string;
  /** Hash: the fleet config (id, version, document, version_info, source, origin, at). */
  readonly config: string;
  /** Hash: instance → its answer (JSON) to the latest fleet config it saw. */
  readonly configAnswers: string;
  /** An Idempotency-Key record (hash), by the digest of route, caller and key. */
  idempotency(digest: string): string;
}

export function fleetKeys(prefix: string): FleetKeys {
  return {
    epoch: `${prefix}epoch`,
    log: `${prefix}log`,
    purgeGeneration: `${prefix}purge-generation`,
    applied: `${prefix}applied`,
    instances: `${prefix}instances`,
    instancePrefix: `${prefix}instance:`,
    config: `${prefix}config`,
    configAnswers: `${prefix}config:answers`,
    idempotency: (digest) => `${prefix}idem:${digest}`,
  };
}

/** Stream entry ids (`<ms>-<seq>`) in order: negative when a comes first. */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}
