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

/**
 * `abort`: when it fires (a deadline), the stream ends with its reason at once, even if nobody is
 * pulling — a reader that stopped reading (its socket full) would otherwise hold the exchange,
 * and everything it counts against, until it left.
 */
export function watchBody(source: ReadableStream<Uint8Array>, watcher: BodyWatcher, abort?: AbortSignal): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let ended = false;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    abort?.removeEventListener("abort", onAbort);
    watcher.onEnd(error);
  };
  let onAbort = () => {};
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (abort === undefined) return;
        onAbort = () => {
          if (ended) return;
          end(abort.reason);
          controller.error(abort.reason);
          reader.cancel(abort.reason).catch(() => {});
        };
        abort.addEventListener("abort", onAbort, { once: true });
      },
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
