/**
 * A small file mapped into memory by every process that opens it (Bun.mmap is a shared mapping:
 * a write in one process is seen by the others at once, measured). Each process grows it to
 * `bytes` and never shrinks it, so processes starting at once are safe.
 */
import { closeSync, fstatSync, ftruncateSync, openSync } from "node:fs";

export function mapSharedFile(path: string, bytes: number): Uint8Array {
  const fd = openSync(path, "a+");
  try {
    if (fstatSync(fd).size < bytes) ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  return Bun.mmap(path);
}
