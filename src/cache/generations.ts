/**
 * Change counters shared by every worker process that uses one cache file, kept in a small file
 * beside it that each process maps into memory (Bun.mmap is a shared mapping: a write in one
 * process is seen by the others at once, measured). A process's memory tier trusts what it holds
 * for a key only while that key's counter — and the counter for purges by prefix or tag — is
 * unchanged, so a purge, an invalidation or a new fill in any worker is in force in all of them
 * the moment it is counted, and a hit needs no read of the file (two array reads instead).
 *
 * Keys share 65,536 slots by hash: a change to one key makes the others in its slot re-read the
 * file once — a cost, never a wrong answer. Counters only ever change (a lost increment between
 * two processes still changes the value), and a reader compares for equality.
 */
import { mapSharedFile } from "../util/shared-file.ts";

const SLOTS = 1 << 16;
/** Slot 0 counts purges that reach many keys (prefix, tag); key slots are 1…SLOTS. */
const WIDE = 0;
const BYTES = (SLOTS + 1) * 4;

export class Generations {
  private readonly counters: Int32Array;

  constructor(path: string) {
    const mapped = mapSharedFile(path, BYTES);
    this.counters = new Int32Array(mapped.buffer, mapped.byteOffset, SLOTS + 1);
  }

  /** The slot of a key's URL part (the part before any configured-header suffix). FNV-1a. */
  slot(baseKey: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < baseKey.length; i++) h = Math.imul(h ^ baseKey.charCodeAt(i), 0x01000193);
    return 1 + ((h >>> 0) & (SLOTS - 1));
  }

  /** A key slot's counter, read before the file is (a change after the read then shows as a difference). */
  keyCount(slot: number): number {
    return this.counters[slot]!;
  }

  /** The counter of purges by prefix or tag. */
  wideCount(): number {
    return this.counters[WIDE]!;
  }

  bump(slot: number): void {
    this.counters[slot] = (this.counters[slot]! + 1) | 0;
  }

  bumpAll(): void {
    this.counters[WIDE] = (this.counters[WIDE]! + 1) | 0;
  }
}
