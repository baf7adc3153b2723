/**
 * The current Runtime, swapped atomically. A request reads `current` once at arrival and keeps
 * that snapshot, so a reload never changes the rules under an in-flight request.
 */
import type { Config } from "../config/schema.ts";
import type { FleetServices } from "../fleet/services.ts";
import type { FleetPushReport } from "../fleet/types.ts";
import { buildRuntime, type Runtime } from "./build.ts";

/**
 * Puts a validated config in force in every worker (a push through the admin API or the config
 * service), or throws when its runtime cannot be built (then the running config stays). Returns
 * the new version and how many worker processes have it.
 */
export type ApplyConfig = (config: Config, source: string, versionInfo?: string) => Promise<{ version: number; workers: number; fleet?: FleetPushReport }>;

export class RuntimeRef {
  private runtime: Runtime;
  private pushed: string | undefined;

  /** `fleet`: the instance's fleet services, given to every runtime it builds. */
  constructor(config: Config, readonly fleet?: FleetServices) {
    this.runtime = buildRuntime(config, 1, undefined, fleet);
  }

  get current(): Runtime {
    return this.runtime;
  }

  /** The control plane's version_info of the push that put the current config in force; undefined when it came from the file. */
  get versionInfo(): string | undefined {
    return this.pushed;
  }

  /** Builds a runtime from an already-validated config and makes it current (`versionInfo`: it was pushed). */
  swap(config: Config, versionInfo?: string): Runtime {
    const previous = this.runtime;
    this.runtime = buildRuntime(config, previous.version + 1, previous, this.fleet);
    this.pushed = versionInfo;
    previous.dispose(this.runtime);
    return this.runtime;
  }
}
