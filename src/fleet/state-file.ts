/**
 * This instance's own fleet state, on its disk (fleet.state_path): the last fleet config it put in
 * force — what it starts from when Redis is down at start — and how far it applied the purge log,
 * under which Redis epoch, so after a restart it reads only what it missed (or knows it cannot
 * tell). Written whole to a temporary file and renamed over the old one: a crash leaves one or the other.
 */
import { renameSync, writeFileSync } from "node:fs";
import { logFleet } from "./redis.ts";
import { type FleetConfigRecord, FleetConfigRecordSchema, type LocalState, LocalStateSchema } from "./records-schema.ts";

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
