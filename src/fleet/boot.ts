/**
 * A fleet instance's start: its fleet services (every process), and in the process that runs the
 * agent, the config to start from — the file's, or with the last fleet config this machine saved
 * (fleet.state_path) put over it, so an instance that starts while Redis is down serves what the
 * fleet served; the agent then catches up with Redis (agent.ts start()).
 */
import { ConfigError, configBaseDir, configDocument, validateLiteral } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { withLocalSections } from "./document.ts";
import { logFleet } from "./redis.ts";
import { createFleetServices } from "./services.ts";
import { loadLocalState } from "./state-file.ts";
import type { FleetServices } from "./types.ts";
import type { LocalState } from "./records-schema.ts";

export interface FleetBoot {
  services: FleetServices;
  /** The agent's saved state (undefined in a process that runs no agent). */
  state: LocalState | undefined;
  /** The config to start from. */
  config: Config;
  /** The fleet config's part in it, when it came from the saved fleet config. */
  overlay: Record<string, unknown> | undefined;
}

export async function bootFleet(fileConfig: Config, runsAgent: boolean): Promise<FleetBoot> {
  const services = createFleetServices(fileConfig.fleet!);
  if (!runsAgent) return { services, state: undefined, config: fileConfig, overlay: undefined };
  const state = await loadLocalState(fileConfig.fleet!.state_path);
  const saved = state.config;
  if (saved === undefined) return { services, state, config: fileConfig, overlay: undefined };
  try {
    const config = validateLiteral(`(saved fleet config version ${saved.version})`, withLocalSections(saved.document, configDocument(fileConfig)), { baseDir: configBaseDir(fileConfig) });
    logFleet({ msg: "fleet: starting from the fleet config saved here", fleet_version: saved.version });
    return { services, state, config, overlay: saved.document };
  } catch (e) {
    const problems = e instanceof ConfigError ? e.problems : [String(e)];
    logFleet({ level: "warn", msg: "fleet: the saved fleet config is not valid with this file; starting from the file", fleet_version: saved.version, problems });
    return { services, state, config: fileConfig, overlay: undefined };
  }
}
