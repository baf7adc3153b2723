/**
 * Whether this machine has every fleet purge: the fleet agent (one process per machine) writes
 * "in sync until <time>" each time it has read the purge log, into a small file every worker of
 * the machine maps (Bun.mmap: a shared mapping, as cache/generations.ts), and a cache lookup in
 * any worker reads it — one array read. Past that time the agent has lost the log (Redis down or
 * hung), and purge.on_redis_failure says whether cached entries are served meanwhile.
 */
import { closeSync, fstatSync, ftruncateSync, openSync } from "node:fs";

const BYTES = 8;

export class SyncFlag {
  private readonly until: Float64Array;

  constructor(path: string) {
    const fd = openSync(path, "a+");
    try {
      if (fstatSync(fd).size < BYTES) ftruncateSync(fd, BYTES);
    } finally {
      closeSync(fd);
    }
    const mapped = Bun.mmap(path);
    this.until = new Float64Array(mapped.buffer, mapped.byteOffset, 1);
  }

  /** The agent: in sync until `untilMs` (wall clock); 0: not in sync. */
  set(untilMs: number): void {
    this.until[0] = untilMs;
  }

  inSync(nowMs = Date.now()): boolean {
    return nowMs < this.until[0]!;
  }
}
