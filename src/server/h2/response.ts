/**
 * A Fetch Response written to an HTTP/2 stream (node:http2): the head, then the body with
 * backpressure (a write that fills the stream's window waits for `drain`), and the body's reader
 * cancelled when the client resets the stream — which the pipeline's body watcher logs as
 * client_aborted and which aborts the upstream read.
 */
import type { OutgoingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { forClient } from "./hpack.ts";
import { H2_INTERNAL_ERROR } from "./request.ts";
import { drained } from "../../util/drained.ts";

/** RFC 9113 §8.2.2: fields that mean nothing on HTTP/2 (node:http2 throws on them). */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

/** The response head as node:http2 takes it: lower-case names, Set-Cookie as a list, connection-specific fields dropped. */
export function responseHead(response: Response, extra: Readonly<Record<string, string>> | undefined): OutgoingHttpHeaders {
  const head: OutgoingHttpHeaders = { ":status": response.status };
  response.headers.forEach((value, name) => {
    if (CONNECTION_SPECIFIC.has(name) || name === "set-cookie") return;
    head[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) head["set-cookie"] = cookies;
  if (extra !== undefined) for (const name in extra) head[name] ??= extra[name];
  return head;
}

/**
 * A body with a declared length up to this is read whole and sent with its head in one go: the
 * HEADERS and DATA frames then leave in one write (measured: writing the head, then each chunk
 * after an await, flushed each separately and cost a third of the engine's throughput).
 */
const WHOLE_BODY_MAX = 64 * 1024;

/** Statuses whose answers have no content (RFC 9110 §6.4.1). */
function bodiless(status: number, method: string): boolean {
  return method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * Writes `response` to `stream`. `extra`: fields added to the head unless the response has them
 * (Alt-Svc). Resolves when the body has ended, or the client went away.
 */
export async function writeResponse(stream: ServerHttp2Stream, response: Response, method: string, extra?: Readonly<Record<string, string>>): Promise<void> {
  if (stream.destroyed || stream.closed) {
    await response.body?.cancel().catch(() => {});
    return;
  }
  const head = forClient(stream, responseHead(response, extra));
  const body = response.body;
  if (body === null || bodiless(response.status, method)) {
    if (body !== null) await body.cancel().catch(() => {});
    stream.respond(head, { endStream: true });
    return;
  }
  const length = Number(response.headers.get("content-length") ?? Number.NaN);
  if (length <= WHOLE_BODY_MAX) {
    let bytes: ArrayBuffer;
    try {
      bytes = await response.arrayBuffer();
    } catch {
      if (!stream.destroyed) stream.close(H2_INTERNAL_ERROR);
      return;
    }
    if (stream.destroyed || stream.closed) return;
    stream.respond(head);
    stream.end(new Uint8Array(bytes));
    return;
  }
  const reader = body.getReader();
  // A client reset stops the read at once (the pending read rejects once the reader is cancelled).
  const onClose = () => void reader.cancel().catch(() => {});
  stream.once("close", onClose);
  try {
    // The head goes out with the first chunk when that is ready at once (one write); otherwise
    // alone, so that a slow first chunk (an event stream) does not hold the head back.
    const first = reader.read();
    let ready = false;
    void first.then(() => (ready = true), () => (ready = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (!ready && !stream.destroyed) stream.respond(head);
    let next = await first;
    if (stream.destroyed) return;
    if (ready && !stream.headersSent) stream.respond(head);
    while (!next.done) {
      if (!stream.write(next.value) && !(await drained(stream))) return;
      next = await reader.read();
      if (stream.destroyed) return;
    }
    stream.end();
  } catch {
    // The body broke off (the upstream cut it, a deadline fired): the client sees the stream reset, not a clean end.
    if (!stream.destroyed) stream.close(H2_INTERNAL_ERROR);
  } finally {
    stream.off("close", onClose);
  }
}
