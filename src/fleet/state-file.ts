/**
 * This instance's own fleet state, on its disk (fleet.state_path): the last fleet config it put in
 * force — what it starts from when Redis is down at start — and how far it applied the purge log,
 * under which Redis epoch, so after a restart it reads only what it missed (or knows it cannot
 * tell). Written whole to a temporary file and renamed over the old one: a crash leaves one or the other.
 */
import { renameSync, writeFileSync } from "node:fs";
import { z } from "zod";
import { logFleet } from "./redis.ts";

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

export async function loadLocalState(path: string): Promise<LocalState> {
  const file = Bun.file(path);
  if (!(await file.exists())) return {};
  try {
    const parsed = LocalStateSchema.safeParse(await file.json());
    if (parsed.success) return parsed.data;
    logFleet({ level: "warn", msg: "fleet: the local state file is not one this version wrote; starting without it", path });
  } catch (e) {
    logFleet({ level: "warn", msg: "fleet: the local state file cannot be read; starting without it", path, error: String(e) });
  }
  return {};
}

export function saveLocalState(path: string, state: LocalState): void {
  try {
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(state));
    renameSync(temporary, path);
  } catch (e) {
    logFleet({ level: "error", msg: "fleet: the local state file cannot be written", path, error: String(e) });
  }
}
