/**
 * Whether this machine has every fleet purge, shared by its workers: the fleet agent (one process
 * per machine) writes "in sync until <time>" each time it has read the purge log, and the purge
 * generation it has applied, into a small file every worker maps (Bun.mmap: a shared mapping, as
 * cache/generations.ts). A cache lookup in any worker reads the time — one array read. Past it
 * (the agent lost the log, or the machine was frozen), the lookup asks Redis for the fleet's purge
 * generation and compares it with the applied one (purge.ts servable()).
 */
import { mapSharedFile } from "../util/shared-file.ts";

const BYTES = 16;

export class SyncFlag {
  private readonly values: Float64Array;

  constructor(path: string) {
    const mapped = mapSharedFile(path, BYTES);
    this.values = new Float64Array(mapped.buffer, mapped.byteOffset, 2);
  }

  /** The agent: in sync until `untilMs` (wall clock); 0: not in sync. */
  set(untilMs: number): void {
    this.values[0] = untilMs;
  }

  inSync(nowMs = Date.now()): boolean {
    return nowMs < this.values[0]!;
  }

  /** The fleet purge generation this machine has applied (every purge up to it). */
  get appliedGeneration(): number {
    return this.values[1]!;
  }

  set appliedGeneration(generation: number) {
    this.values[1] = generation;
  }
}
