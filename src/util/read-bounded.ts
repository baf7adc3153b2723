/** Reads a stream whole if it stays within `max` bytes: the bytes, or undefined (the stream is cancelled) when it grows past. */
export async function readBounded(stream: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return undefined;
    }
    parts.push(value);
  }
}

/** What readPrefix found: the whole stream, or the bytes read so far and a stream of all of it. */
export type Prefix = { whole: Uint8Array } | { stream: ReadableStream<Uint8Array> };

/**
 * Reads a stream up to `max` bytes. When it ends within them: the bytes. When it grows past:
 * a stream that yields what was read and then the rest, untouched and unbuffered. `ms` bounds
 * the wait (0 = none): past it the stream is cancelled and the promise rejects with `onLate()`.
 */
export async function readPrefix(source: ReadableStream<Uint8Array>, max: number, ms: number, onLate: () => Error): Promise<Prefix> {
  const reader = source.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    if (ms > 0) timer = setTimeout(() => reject(onLate()), ms);
  });
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), late]);
      if (done) return { whole: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
      parts.push(value);
      size += value.byteLength;
      if (size > max) return { stream: prepend(parts, reader) };
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** A stream of `head` followed by what `rest` still has (pulled on demand: backpressure holds). */
function prepend(head: Uint8Array[], rest: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> }): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i < head.length) return controller.enqueue(head[i++]!);
      const { done, value } = await rest.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return rest.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
