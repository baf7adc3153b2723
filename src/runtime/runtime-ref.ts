/**
 * The current Runtime, swapped atomically. A request reads `current` once at arrival and keeps
 * that snapshot, so a reload never changes the rules under an in-flight request.
 */
import type { Config } from "../config/schema.ts";
import { buildRuntime, type Runtime } from "./build.ts";

export class RuntimeRef {
  private runtime: Runtime;

  constructor(config: Config) {
    this.runtime = buildRuntime(config, 1);
  }

  get current(): Runtime {
    return this.runtime;
  }

  /** Builds a runtime from an already-validated config and makes it current. */
  swap(config: Config): Runtime {
    const previous = this.runtime;
    this.runtime = buildRuntime(config, previous.version + 1, previous);
    previous.dispose();
    return this.runtime;
  }
}
