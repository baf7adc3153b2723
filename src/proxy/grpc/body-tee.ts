/**
 * A gRPC call's request body, read once from the client and sent to the upstream try with
 * backpressure; kept while it stays within `keepMax` bytes, so a retry can send it again. A retry
 * is possible only once the client has sent the whole body and it was kept (a unary or
 * server-streaming call, small): a client stream in progress is never replayed (Envoy's rule too).
 */
import type { ClientHttp2Stream } from "node:http2";
import { writeDrained } from "../../util/drained.ts";

export class BodyTee {
  private readonly next: (() => Promise<{ done: boolean; value?: Uint8Array }>) | undefined;
  private readonly stop: () => void;
  private readonly kept: Uint8Array[] = [];
  private keptBytes = 0;
  private overflowed = false;
  /** The client's body has ended (all of it was read). */
  complete: boolean;
  /** Bytes read from the client. */
  received = 0;
  /** Each chunk read (activity for the idle timer). */
  onChunk: (n: number) => void = () => {};

  constructor(body: ReadableStream<Uint8Array> | null, private readonly keepMax: number) {
    const reader = body?.getReader();
    this.next = reader === undefined ? undefined : () => reader.read();
    this.stop = () => void reader?.cancel().catch(() => {});
    this.complete = body === null;
  }

  /** A retry can send the whole body again. */
  get replayable(): boolean {
    return this.complete && !this.overflowed;
  }

  /**
   * Sends the body to `stream`: what was kept (a retry), then what the client still sends, waiting
   * whenever the stream's window is full; ends the stream's side. Resolves false when the
   * stream went away first (or reading the client failed: then the client's stream is broken).
   */
  async pipeTo(stream: ClientHttp2Stream): Promise<boolean> {
    for (const chunk of this.kept) if (!(await writeDrained(stream, chunk))) return false;
    while (!this.complete && this.next !== undefined) {
      let next: { done: boolean; value?: Uint8Array };
      try {
        next = await this.next();
      } catch {
        return false;
      }
      if (next.done || next.value === undefined) {
        this.complete = true;
        break;
      }
      const chunk = next.value;
      this.received += chunk.byteLength;
      this.onChunk(chunk.byteLength);
      if (!this.overflowed) {
        if (this.keptBytes + chunk.byteLength <= this.keepMax) {
          this.kept.push(chunk);
          this.keptBytes += chunk.byteLength;
        } else {
          this.overflowed = true;
          this.kept.length = 0;
        }
      }
      if (!(await writeDrained(stream, chunk))) return false;
    }
    if (!stream.destroyed && !stream.writableEnded) stream.end();
    return true;
  }

  /** Nobody will read the rest (the call ended first). */
  cancel(): void {
    this.stop();
  }
}
