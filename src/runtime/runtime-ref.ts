/**
 * The current Runtime, swapped atomically. A request reads `current` once at arrival and keeps
 * that snapshot, so a reload never changes the rules under an in-flight request.
 */
import type { Config } from "../config/schema.ts";
import { buildRuntime } from "./build.ts";
import type { Runtime } from "../proxy/context.ts";
import type { FleetPushReport } from "../fleet/types.ts";
import type { FleetServices } from "../fleet/types.ts";

/**
 * Puts a validated config in force in every worker (a push through the admin API or the config
 * service), or throws when its runtime cannot be built (then the running config stays). Returns
 * the new version and how many worker processes have it.
 */
export type ApplyConfig = (config: Config, source: string, versionInfo?: string) => Promise<{ version: number; workers: number; fleet?: FleetPushReport }>;

/** One attempt to change the config in force (start, a file reload, a push), for the status page. */
export interface ConfigChange {
  /** ms since the epoch. */
  readonly at: number;
  /** `start`, `file` (SIGHUP or a file change), `admin-api`, `config-service PushSnapshot` … */
  readonly source: string;
  readonly result: "ok" | "refused";
  /** The version in force after it (unchanged when refused). */
  readonly version: number;
  /** Why it was refused: the first problem, and how many there were. */
  readonly problem?: string;
  readonly problems?: number;
}

/** How many changes are remembered. */
const CHANGES_KEPT = 20;

export class RuntimeRef {
  private runtime: Runtime;
  private pushed: string | undefined;
  private readonly history: ConfigChange[] = [];

  /** `fleet`: the instance's fleet services, given to every runtime it builds. */
  constructor(config: Config, readonly fleet?: FleetServices) {
    this.runtime = buildRuntime(config, 1, undefined, fleet);
    this.noteChange("start", "ok");
  }

  /** The last changes tried (newest first), bounded. */
  get changes(): readonly ConfigChange[] {
    return this.history;
  }

  /** Remembers a change of the config in force, or a refused one with its `problems`. */
  noteChange(source: string, result: "ok" | "refused", problems: readonly string[] = []): void {
    const change: ConfigChange = { at: Date.now(), source, result, version: this.runtime.version, ...(problems.length > 0 ? { problem: problems[0], problems: problems.length } : {}) };
    this.history.unshift(change);
    if (this.history.length > CHANGES_KEPT) this.history.pop();
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
