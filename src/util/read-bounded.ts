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
