/**
 * Works around Bun 1.4.5's HPACK encoder (node:http2 server), which ignores the client's
 * SETTINGS_HEADER_TABLE_SIZE (RFC 7541 §4.2): it indexes response fields into its dynamic table and
 * refers to them later even when the client said 0 — as nginx's grpc_pass does, which then fails
 * every later answer ("upstream sent invalid http2 table index"). Measured with raw frames
 * (test/server/h2-hpack.test.ts). For such a client every field is sent as never-indexed (which
 * Bun honours through http2.sensitiveHeaders), the Date field included (Bun would add it indexed).
 */
import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";

let dateSecond = 0;
let dateValue = "";

function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

/** `headers`, made safe for the stream's client: unchanged unless it forbade a dynamic table. */
export function forClient(stream: ServerHttp2Stream, headers: OutgoingHttpHeaders, trailers = false): OutgoingHttpHeaders {
  if (stream.session?.remoteSettings?.headerTableSize !== 0) return headers;
  if (!trailers) headers.date ??= httpDate();
  const names = Object.keys(headers).filter((name) => name.charCodeAt(0) !== 58);
  (headers as Record<symbol, unknown>)[http2.sensitiveHeaders] = names;
  return headers;
}
