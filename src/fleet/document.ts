/**
 * Which parts of a config are the fleet's and which each instance keeps. A fleet config (pushed or
 * PUT to any instance) carries routes, clusters, caches, auth, rate limits and modules; each
 * instance keeps its own listeners, admin, echo, workers, fleet, access_log, telemetry and shutdown
 * from its file (ports and log paths differ between machines, and they are bound at start).
 */
type Doc = Record<string, unknown>;

export const LOCAL_SECTIONS: readonly string[] = ["$schema", "listeners", "workers", "admin", "echo", "fleet", "access_log", "telemetry", "shutdown"];

/** The fleet's part of a config document. */
export function fleetDocument(document: Doc): Doc {
  return Object.fromEntries(Object.entries(document).filter(([k]) => !LOCAL_SECTIONS.includes(k)));
}

/** The fleet's document with this instance's own sections from `local` (its file's, or the config in force). */
export function withLocalSections(fleet: Doc, local: Doc): Doc {
  return { ...fleetDocument(fleet), ...Object.fromEntries(Object.entries(local).filter(([k]) => LOCAL_SECTIONS.includes(k))) };
}
