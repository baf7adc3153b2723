/**
 * Passes a body stream through while watching it: counts bytes, reports activity (for the idle
 * timeout), and reports its end exactly once — finished, failed, or cancelled by the reader.
 * It pulls only when its reader asks (highWaterMark 0), so a slow reader slows the source
 * instead of piling chunks up in memory.
 */
export interface BodyWatcher {
  onChunk(bytes: number): void;
  onEnd(error?: unknown): void;
}

export const BODY_CANCELLED = Symbol("body cancelled");

export function watchBody(source: ReadableStream<Uint8Array>, watcher: BodyWatcher): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let ended = false;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    watcher.onEnd(error);
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            end();
            return;
          }
          watcher.onChunk(value.byteLength);
          controller.enqueue(value);
        } catch (e) {
          end(e);
          controller.error(e);
        }
      },
      cancel(reason) {
        end(BODY_CANCELLED);
        return reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}
