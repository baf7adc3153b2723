/**
 * One upstream answer, streamed to several readers as it arrives: the leader's body is read once
 * and every chunk is kept (the caller bounds the size) so that a reader who joins late starts from
 * the beginning. Each reader gets its own stream; a slow reader only holds references to chunks.
 */
export class Broadcast {
  private readonly chunks: Uint8Array[] = [];
  private finished = false;
  private failure: unknown;
  private readonly wakers = new Set<() => void>();
  private resolveEnded!: () => void;
  /** Resolves once the whole body has arrived (or failed). */
  readonly ended: Promise<void> = new Promise((r) => (this.resolveEnded = r));

  /** `requestHeaders`: the leader's request headers its answer was selected by (Vary), for followers to match. */
  constructor(readonly status: number, readonly statusText: string, readonly headers: Headers, readonly requestHeaders: Headers = new Headers()) {}

  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.wake();
  }

  end(error?: unknown): void {
    this.finished = true;
    this.failure = error;
    this.wake();
    this.resolveEnded();
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  /** A new reader's copy of the answer, from its first byte. */
  response(extraHeaders: Record<string, string> = {}): Response {
    let index = 0;
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        while (index >= this.chunks.length && !this.finished) {
          await new Promise<void>((resolve) => {
            const waker = () => {
              this.wakers.delete(waker);
              resolve();
            };
            this.wakers.add(waker);
          });
        }
        if (index < this.chunks.length) controller.enqueue(this.chunks[index++]!);
        else if (this.failure !== undefined) controller.error(this.failure);
        else controller.close();
      },
    }, { highWaterMark: 0 });
    const headers = new Headers(this.headers);
    for (const [name, value] of Object.entries(extraHeaders)) headers.set(name, value);
    return new Response(body, { status: this.status, statusText: this.statusText, headers });
  }
}

/** Reads `source` into `broadcast` (up to `max` bytes, else it fails the broadcast); returns the leader's own stream. */
export function broadcastBody(source: ReadableStream<Uint8Array>, broadcast: Broadcast, max: number): ReadableStream<Uint8Array> {
  const [toClient, toShare] = source.tee();
  void (async () => {
    let size = 0;
    for await (const chunk of toShare) {
      size += chunk.byteLength;
      if (size > max) throw new Error("the answer outgrew the shared-body limit");
      broadcast.push(chunk);
    }
    broadcast.end();
  })().catch((e: unknown) => broadcast.end(e));
  return toClient;
}
