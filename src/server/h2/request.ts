/**
 * An HTTP/2 request stream (node:http2) as the Fetch Request the proxy pipeline takes, and the
 * request rules of RFC 9113 §8 that the stream's parser leaves to us.
 *
 * What Bun 1.4.5's node:http2 server refuses itself (measured with raw frames, test/server/
 * h2-hostile.test.ts; RST_STREAM PROTOCOL_ERROR before any handler runs): upper-case field
 * names; connection-specific fields (connection, keep-alive, proxy-connection, transfer-encoding,
 * upgrade) and `te` other than `trailers` (§8.2.2); CR, LF or NUL in a value; a missing,
 * repeated, unknown or misplaced pseudo-header (§8.3); an empty or relative `:path`, or one with
 * a space; a non-numeric or repeated content-length; a name with `:` or a space; an empty name
 * (GOAWAY COMPRESSION_ERROR). It passes: `:path *` (OPTIONS), `:path` with dot segments,
 * a lower-case method, a `:scheme` other than http/https, CONNECT, a `host` that differs from
 * `:authority`; those are refused here or by the request guard. A content-length that disagrees
 * with the DATA frames resets the stream (PROTOCOL_ERROR) — and is counted here as well, so the
 * bytes handed upstream never exceed the declared length (an h2→h1 downgrade cannot smuggle).
 */
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { isValidAuthority } from "../../security/guard.ts";
import { errors, type SwitchyardError } from "../../util/errors.ts";

/** NGHTTP2 error codes (RFC 9113 §7). */
export const H2_PROTOCOL_ERROR = 1;
export const H2_INTERNAL_ERROR = 2;
export const H2_REFUSED_STREAM = 7;
export const H2_CANCEL = 8;
export const H2_ENHANCE_YOUR_CALM = 11;

/** A request body stream reads at most this much ahead of the pipeline before pausing the stream (its flow-control window then fills). */
const BODY_HIGH_WATER = 64 * 1024;

/**
 * The Request for a stream, or the error to answer it with. `abort` fires the Request's signal
 * (the client reset the stream, or the connection went).
 */
export function toRequest(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, scheme: "http" | "https", signal: AbortSignal, maxBody: number): Request | SwitchyardError {
  const method = headers[":method"] ?? "";
  // Methods are case-sensitive (RFC 9110 §9.1); Request would upper-case `get` or `delete` (Fetch's normalization), so it is refused here, as Bun's HTTP/1.1 parser does.
  if (/[a-z]/.test(method)) return errors.methodNotImplemented(method);
  const authority = headers[":authority"];
  const host = headers.host;
  // §8.3.1: an authority in both that names two origins is malformed; without :authority, Host names it.
  if (authority !== undefined && host !== undefined && host !== authority) return errors.invalidHost("the host field differs from :authority (RFC 9113 §8.3.1)");
  const origin = authority ?? host ?? "";
  if (origin === "") return errors.invalidHost("the request has neither :authority nor host (RFC 9113 §8.3.1)");
  // Userinfo, a path or a second host in the authority would split what routing and the upstream see.
  if (!isValidAuthority(origin.toLowerCase())) return errors.invalidHost("the :authority is not a valid host[:port] (RFC 9113 §8.3.1)");
  let path = headers[":path"] ?? "/";
  if (method === "CONNECT") path = "/"; // refused by the guard (405), as on HTTP/1.1
  else if (path[0] !== "/") return errors.invalidPath("the :path is not in origin form (RFC 9113 §8.3.1)");
  const requestScheme = headers[":scheme"];
  if (method !== "CONNECT" && requestScheme !== "http" && requestScheme !== "https") return errors.badRequest("the :scheme is not http or https");
  const fields = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") fields.append(name, value);
    else for (const v of value) fields.append(name, v);
  }
  if (host === undefined) fields.set("host", origin);
  let url: string;
  try {
    // The URL parser resolves dot segments (also %2e%2e) and `\`, as Bun.serve does for HTTP/1.1
    // (routes/proxy.ts). The path is appended, never resolved against a base: `//evil/x` stays a path.
    url = new URL(`${scheme}://${origin}${path}`).href;
  } catch {
    return errors.invalidPath("the :path is not a valid request target");
  }
  const declared = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
  // The listener's max_request_body, as Bun.serve's maxRequestBodySize is for HTTP/1.1: a declared length at once, a streamed body when it passes it.
  if (declared !== undefined && declared > maxBody) return errors.bodyTooLarge(maxBody);
  const body = stream.endAfterHeaders || method === "GET" || method === "HEAD" ? null : bodyOf(stream, declared, maxBody);
  return new Request(url, { method, headers: fields, body, signal, duplex: "half" } as RequestInit);
}

/**
 * The stream's DATA as a byte stream with backpressure: the stream is paused while the reader is
 * BODY_HIGH_WATER ahead, so a slow upstream holds back a fast client by HTTP/2 flow control.
 * With a declared length, a byte more (or fewer at the end) errors the body (and resets the stream).
 */
function bodyOf(stream: ServerHttp2Stream, declared: number | undefined, maxBody: number): ReadableStream<Uint8Array> {
  let received = 0;
  let done = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const refuse = (message: string, error = errors.invalidFraming(message)) => {
        if (done) return;
        done = true;
        controller.error(error);
        if (!stream.destroyed) stream.close(error.status === 413 ? H2_CANCEL : H2_PROTOCOL_ERROR);
      };
      stream.on("data", (chunk: Buffer) => {
        if (done) return;
        received += chunk.length;
        if (declared !== undefined && received > declared) return refuse("the request body is longer than its content-length (RFC 9113 §8.1.1)");
        if (received > maxBody) return refuse("", errors.bodyTooLarge(maxBody));
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) stream.pause();
      });
      stream.on("end", () => {
        if (done) return;
        if (declared !== undefined && received !== declared) return refuse("the request body is shorter than its content-length (RFC 9113 §8.1.1)");
        done = true;
        controller.close();
      });
      stream.on("close", () => {
        if (done) return;
        done = true;
        controller.error(Object.assign(new Error("the client reset the stream"), { name: "AbortError" }));
      });
    },
    pull() {
      if (stream.isPaused()) stream.resume();
    },
    cancel() {
      // Nobody reads the rest: it is let through (and dropped) so the stream's window does not stall its answer.
      done = true;
      stream.resume();
    },
  }, { highWaterMark: BODY_HIGH_WATER, size: (chunk) => chunk?.byteLength ?? 0 });
}
