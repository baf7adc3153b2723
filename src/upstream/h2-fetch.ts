/**
 * fetch's shape over a pooled HTTP/2 stream (upstream/h2-pool.ts): for clusters with
 * `protocol: http2` and plain http:// endpoints (h2c by prior knowledge), which Bun's fetch
 * cannot speak (it does HTTP/2 over TLS only). The request body streams with backpressure, the
 * response body is a byte stream that pauses the upstream stream while unread; `signal` resets
 * the stream (CANCEL). Trailers are not part of a Response: native gRPC calls use the pool directly.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { SwitchyardError } from "../util/errors.ts";
import { type H2Endpoint, openStream } from "./h2-pool.ts";
import { writeDrained } from "../util/drained.ts";

/** RFC 9113 §8.2.2: fields an HTTP/2 request may not carry (node:http2 throws on them). */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "te"]);

const READ_HIGH_WATER = 64 * 1024;

export interface H2FetchInit {
  method?: string;
  headers?: Headers | Record<string, string>;
  body?: ReadableStream<Uint8Array> | ArrayBuffer | Uint8Array | string | null;
  signal?: AbortSignal | null;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error("aborted"), { name: "AbortError" });
}

/** One request to `endpoint` (whose origin `url` starts with) over HTTP/2; resolves with the response head, its body streaming. */
export async function h2Fetch(endpoint: H2Endpoint, url: string, init: H2FetchInit, connectTimeoutMs = 0): Promise<Response> {
  const target = new URL(url);
  const headers = new Headers(init.headers);
  const head: OutgoingHttpHeaders = {
    ":method": init.method ?? "GET",
    ":scheme": target.protocol === "https:" ? "https" : "http",
    ":authority": headers.get("host") ?? target.host,
    ":path": target.pathname + target.search,
  };
  headers.forEach((value, name) => {
    if (!CONNECTION_SPECIFIC.has(name)) head[name] = value;
  });
  const signal = init.signal ?? undefined;
  if (signal?.aborted) throw abortError(signal);
  const { stream } = await openStream(endpoint, head, connectTimeoutMs);
  stream.on("error", () => {});
  const onAbort = () => stream.close(8);
  signal?.addEventListener("abort", onAbort, { once: true });
  void sendBody(stream, init.body ?? null);
  const answer = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    stream.once("response", resolve);
    stream.once("close", () => {
      if (signal?.aborted) return reject(abortError(signal));
      reject(new SwitchyardError({
        code: "upstream_reset", status: 502, source: "upstream", retryable: true,
        message: `the upstream reset the HTTP/2 stream before answering (code ${stream.rstCode ?? 0})`,
      }));
    });
  });
  const status = Number(answer[":status"] ?? 0);
  const responseHeaders = new Headers();
  for (const name in answer) {
    if (name.charCodeAt(0) === 58) continue;
    const value = answer[name];
    if (typeof value === "string") responseHeaders.append(name, value);
    else if (value !== undefined) for (const v of value) responseHeaders.append(name, v);
  }
  let done = false;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      stream.on("data", (chunk: Buffer) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) stream.pause();
      });
      stream.on("end", () => {
        if (done) return;
        done = true;
        signal?.removeEventListener("abort", onAbort);
        controller.close();
      });
      stream.on("close", () => {
        signal?.removeEventListener("abort", onAbort);
        if (done) return;
        done = true;
        controller.error(signal?.aborted ? abortError(signal) : Object.assign(new Error("the upstream reset the stream"), { code: "ECONNRESET" }));
      });
    },
    pull() {
      if (stream.isPaused()) stream.resume();
    },
    cancel() {
      done = true;
      if (!stream.destroyed) stream.close(8);
    },
  }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk?.byteLength ?? 0 });
  const bodiless = init.method === "HEAD" || status === 204 || status === 304;
  if (bodiless) void body.cancel();
  return new Response(bodiless ? null : body, { status, headers: responseHeaders });
}

/** Writes the request body (any of fetch's body kinds used by the proxy) with backpressure, then ends the stream's side. */
async function sendBody(stream: import("node:http2").ClientHttp2Stream, body: NonNullable<H2FetchInit["body"]> | null): Promise<void> {
  const write = (chunk: Uint8Array): Promise<boolean> => writeDrained(stream, chunk);
  if (body === null) {
    stream.end();
    return;
  }
  if (typeof body === "string") await write(Buffer.from(body));
  else if (body instanceof ArrayBuffer) await write(new Uint8Array(body));
  else if (body instanceof Uint8Array) await write(body);
  else {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!(await write(value))) {
          void reader.cancel().catch(() => {});
          return;
        }
      }
    } catch {
      if (!stream.destroyed) stream.close(8);
      return;
    }
  }
  if (!stream.destroyed) stream.end();
}
