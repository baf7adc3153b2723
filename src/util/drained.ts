import type { Writable } from "node:stream";

/** Resolves true once `stream` can take more, false if it closed first (the reader is gone). */
export function drained(stream: Writable): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = (ok: boolean) => {
      stream.off("drain", onDrain);
      stream.off("close", onClose);
      resolve(ok);
    };
    const onDrain = () => settle(true);
    const onClose = () => settle(false);
    stream.on("drain", onDrain);
    stream.on("close", onClose);
  });
}

/** Writes one chunk with backpressure: resolves true when the stream can take the next, false when it is gone. */
export function writeDrained(stream: Writable, chunk: Uint8Array): Promise<boolean> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve(false);
  if (stream.write(chunk)) return Promise.resolve(true);
  return drained(stream);
}
