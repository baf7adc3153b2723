/** What the fleet keeps as JSON: heartbeats in Redis, and the local state file (the last fleet config, the place in the purge log). */
import { z } from "zod";

/** What an instance says of itself in each heartbeat (read back from Redis through this schema). */
export const HeartbeatSchema = z.object({
  id: z.string(),
  region: z.string().nullable(),
  boot: z.string(),
  /** Switchyard's version. */
  software: z.string(),
  started: z.string(),
  requests_per_second: z.number(),
  /** Its config version, and the fleet config version in force there (0: its file's). */
  config_version: z.number(),
  fleet_version: z.number(),
});

export type Heartbeat = z.infer<typeof HeartbeatSchema>;


/** A fleet config as Redis holds it (and as it is kept here). */
export const FleetConfigRecordSchema = z.object({
  /** Unique per push. */
  id: z.string().min(1),
  version: z.number().int().min(1),
  /** The fleet's sections of the config document (fleet/document.ts). */
  document: z.record(z.string(), z.unknown()),
  version_info: z.string(),
  source: z.string(),
  /** The instance it was pushed to. */
  origin: z.string(),
});

export type FleetConfigRecord = z.infer<typeof FleetConfigRecordSchema>;

export const LocalStateSchema = z.object({
  /** The Redis epoch the purge log position belongs to. */
  epoch: z.string().optional(),
  /** The last purge log entry applied here. */
  applied: z.string().optional(),
  /** The purge generation of that entry (fleet keys: purge-generation). */
  generation: z.number().optional(),
  /** The fleet config in force here (its last ACK). */
  config: FleetConfigRecordSchema.optional(),
  /** The last fleet config answered (ACK or NACK), so it is not answered twice. */
  answered: z.object({ id: z.string(), version: z.number() }).optional(),
});

export type LocalState = z.infer<typeof LocalStateSchema>;

