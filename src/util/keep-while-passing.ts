/**
 * Passes a body through to its reader while keeping a copy (up to `max` bytes), and hands the copy
 * to `keep` before the reader's stream ends: whoever sends the next request after reading this
 * answer whole finds it kept (a stored cache entry, a recorded Idempotency-Key answer). A copy
 * that outgrew `max` is handed over as undefined. A body that fails is not kept (`failed`).
 * `drainOnCancel`: a reader that leaves does not stop the keeping — the rest is read in the
 * background and kept (an Idempotency-Key answer must be recorded for the client's retry; a cache
 * fill serves the requests collapsed behind it); otherwise a cancelled body is not kept.
 */
export interface Keeper {
  keep(bytes: Uint8Array | undefined): Promise<void>;
  failed(error: unknown): void;
}

export function keepWhilePassing(source: ReadableStream<Uint8Array>, max: number, keeper: Keeper, drainOnCancel = false): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let parts: Uint8Array[] | undefined = [];
  let size = 0;
  let settled = false;
  const take = (chunk: Uint8Array) => {
    if (parts === undefined) return;
    size += chunk.byteLength;
    if (size <= max) parts.push(chunk);
    else parts = undefined;
  };
  const whole = () => (parts === undefined ? undefined : parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  const fail = (e: unknown) => {
    if (settled) return;
    settled = true;
    keeper.failed(e);
  };
  /** The rest of the body, read after the reader left, then kept (no further than `max`: past it there is nothing to keep). */
  const drain = async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        take(value);
        if (parts === undefined) {
          reader.cancel().catch(() => {});
          break;
        }
      }
    } catch (e) {
      fail(e);
      return;
    }
    if (!settled) {
      settled = true;
      await keeper.keep(whole());
    }
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        fail(e);
        controller.error(e);
        return;
      }
      if (chunk.done) {
        if (!settled) {
          settled = true;
          await keeper.keep(whole());
        }
        controller.close();
        return;
      }
      take(chunk.value);
      controller.enqueue(chunk.value);
    },
    cancel(reason) {
      if (drainOnCancel && !settled) {
        void drain();
        return;
      }
      fail(reason);
      return reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
