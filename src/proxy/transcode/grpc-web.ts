/**
 * gRPC-Web over HTTP/1.1 (grpc/doc/PROTOCOL-WEB.md): the message goes in a length-prefixed frame
 * (1 flag byte, 4-byte big-endian length) as `application/grpc-web+proto`; the reply is a data
 * frame followed by a trailer frame (flag 0x80) holding `grpc-status` and `grpc-message` as HTTP/1
 * header lines — or, for an immediate error, no body and the status in the headers ("trailers-only").
 */
import { codeFromHttpStatus, GrpcCode } from "./status.ts";
import { malformed, mediaType, readReplyBody, refuseEncoding, type RpcResult, type WireProtocol } from "./wire.ts";

const FLAG_TRAILER = 0x80;
const FLAG_COMPRESSED = 0x01;

function frame(message: Uint8Array, flags = 0): Uint8Array {
  const out = new Uint8Array(5 + message.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, message.byteLength);
  out.set(message, 5);
  return out;
}

/** grpc-timeout: at most 8 digits and a unit (PROTOCOL-HTTP2.md); milliseconds while they fit, else seconds. */
function grpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.floor(ms));
  return whole <= 99_999_999 ? `${whole}m` : `${Math.min(99_999_999, Math.ceil(whole / 1000))}S`;
}

export const grpcWebProtocol: WireProtocol = {
  requestBody: (message) => frame(message),

  setHeaders(headers, timeoutMs) {
    headers.set("content-type", "application/grpc-web+proto");
    headers.set("x-grpc-web", "1");
    headers.set("grpc-accept-encoding", "identity");
    if (timeoutMs !== undefined) headers.set("grpc-timeout", grpcTimeout(timeoutMs));
  },

  async readReply(response, maxBytes): Promise<RpcResult> {
    refuseEncoding(response.headers, "content-encoding");
    const headerStatus = response.headers.get("grpc-status");
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {});
      const status = headerStatus === null ? undefined : parseStatus(headerStatus, response.headers.get("grpc-message"));
      if (status !== undefined && status.code !== 0) return { ok: false, ...status };
      return { ok: false, code: codeFromHttpStatus(response.status), message: `the upstream answered HTTP ${response.status} without a gRPC status` };
    }
    const type = mediaType(response.headers);
    if (type !== "application/grpc-web" && type !== "application/grpc-web+proto") {
      await response.body?.cancel().catch(() => {});
      throw malformed("upstream_bad_response", `the upstream answered with content-type "${type}", not application/grpc-web+proto`);
    }
    const body = await readReplyBody(response, maxBytes);
    if (headerStatus !== null) {
      // Trailers-only: the status is all there is.
      if (body.byteLength > 0) throw malformed("upstream_bad_frame", "the upstream sent grpc-status in its headers (trailers-only) and a body as well");
      const status = parseStatus(headerStatus, response.headers.get("grpc-message"));
      if (status.code === 0) throw malformed("upstream_bad_frame", "the upstream answered OK without a reply message (trailers-only)");
      return { ok: false, ...status };
    }
    return readFrames(body);
  },
};

/** Walks the frames: exactly one data frame (for a unary OK), then one trailer frame, then nothing. */
function readFrames(body: Uint8Array): RpcResult {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const messages: Uint8Array[] = [];
  let offset = 0;
  while (offset < body.byteLength) {
    if (body.byteLength - offset < 5) throw malformed("upstream_bad_frame", `the upstream's reply ends inside a frame header (${body.byteLength - offset} of 5 bytes)`);
    const flags = body[offset]!;
    const length = view.getUint32(offset + 1);
    const start = offset + 5;
    if (body.byteLength - start < length) throw malformed("upstream_bad_frame", `the upstream's reply ends inside a frame (${body.byteLength - start} of ${length} bytes)`);
    const payload = body.subarray(start, start + length);
    offset = start + length;
    if (flags & FLAG_COMPRESSED) throw malformed("upstream_compressed", "the upstream sent a compressed frame though the proxy asked for identity");
    if (flags === FLAG_TRAILER) {
      if (offset !== body.byteLength) throw malformed("upstream_bad_frame", "the upstream sent data after its trailers");
      const trailers = parseTrailers(payload);
      const status = trailers.get("grpc-status");
      if (status === undefined) throw malformed("upstream_missing_trailers", "the upstream's trailers carry no grpc-status");
      const result = parseStatus(status, trailers.get("grpc-message") ?? null);
      if (result.code !== 0) return { ok: false, ...result };
      if (messages.length !== 1) throw malformed("upstream_bad_frame", `the upstream answered OK with ${messages.length} messages to a unary call`);
      return { ok: true, message: messages[0]! };
    }
    if (flags !== 0) throw malformed("upstream_bad_frame", `the upstream sent a frame with unknown flags 0x${flags.toString(16).padStart(2, "0")}`);
    messages.push(payload);
  }
  throw malformed("upstream_missing_trailers", "the upstream's reply ended without a trailer frame (no grpc-status)");
}

/** The trailer frame's `name: value` lines (CRLF separated, names lower-cased). */
function parseTrailers(payload: Uint8Array): Map<string, string> {
  const trailers = new Map<string, string>();
  for (const line of new TextDecoder().decode(payload).split(/\r?\n/)) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw malformed("upstream_bad_frame", "the upstream's trailer frame has a line that is not `name: value`");
    trailers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return trailers;
}

/** grpc-status and the percent-encoded grpc-message (PROTOCOL-HTTP2.md). */
function parseStatus(status: string, message: string | null): { code: number; message: string } {
  if (!/^\d{1,3}$/.test(status.trim())) throw malformed("upstream_bad_frame", `the upstream sent grpc-status "${status.slice(0, 40)}", not a number`);
  const n = Number(status);
  // Codes beyond the 17 defined ones are UNKNOWN (statuscodes.md).
  return { code: n <= 16 ? n : GrpcCode.UNKNOWN, message: percentDecode(message ?? "") };
}

function percentDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // a malformed escape: the text as sent beats no message
  }
}
