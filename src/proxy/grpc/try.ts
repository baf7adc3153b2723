/**
 * One upstream try of a native gRPC call: a stream on a pooled HTTP/2 connection (upstream/
 * h2-pool.ts) with the request's headers as forward.ts makes them (X-Forwarded-*, the route's
 * header rules, filters) plus `te: trailers` and the remaining deadline as `grpc-timeout`; the
 * request body sent beside it; resolves when the answer's head is in (or the try failed).
 */
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import type { ClientSpan } from "../../observe/tracing.ts";
import type { Endpoint } from "../../upstream/cluster.ts";
import { openStream } from "../../upstream/h2-pool.ts";
import { SwitchyardError } from "../../util/errors.ts";
import type { RoutedContext } from "../context.ts";
import type { Deadlines } from "../deadlines.ts";
import { upstreamHeaders, upstreamUrl } from "../forward.ts";
import type { BodyTee } from "./body-tee.ts";
import { formatGrpcTimeout } from "../../util/grpc-status.ts";

/** RFC 9113 §8.2.2: never sent on HTTP/2 (te is set to `trailers` below, as gRPC requires). */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host", "content-length"]);

export type GrpcTry =
  | { ok: true; stream: ClientHttp2Stream; head: IncomingHttpHeaders; endpoint: Endpoint; startedAt: number; span: ClientSpan | undefined }
  | { ok: false; error: SwitchyardError; endpoint: Endpoint; startedAt: number; span: ClientSpan | undefined; refused: boolean };

/** The upstream request head of a try. */
function requestHead(ctx: RoutedContext, endpoint: Endpoint, deadlines: Deadlines, traceparent: string | undefined): OutgoingHttpHeaders {
  const headers = upstreamHeaders(ctx, ctx.cluster, traceparent);
  const url = upstreamUrl(ctx, endpoint);
  const head: OutgoingHttpHeaders = {
    ":method": "POST",
    ":scheme": endpoint.tls === undefined ? "http" : "https",
    ":authority": headers.get("host") ?? endpoint.address,
    ":path": url.slice(endpoint.origin.length) || "/",
  };
  headers.forEach((value, name) => {
    if (!CONNECTION_SPECIFIC.has(name)) head[name] = value;
  });
  head.te = "trailers";
  const left = deadlines.remaining();
  if (left !== undefined) head["grpc-timeout"] = formatGrpcTimeout(left);
  return head;
}

/** Sends one try; `abort` fires when the client left or a deadline passed. */
export async function grpcTry(ctx: RoutedContext, endpoint: Endpoint, deadlines: Deadlines, body: BodyTee, span: ClientSpan | undefined): Promise<GrpcTry> {
  const startedAt = performance.now();
  const failed = (e: unknown, refused = false): GrpcTry => ({ ok: false, error: SwitchyardError.from(deadlines.signal.aborted ? deadlines.signal.reason : e), endpoint, startedAt, span, refused });
  ctx.upstreamStartedAt = startedAt;
  let stream: ClientHttp2Stream;
  try {
    ({ stream } = await openStream(endpoint, requestHead(ctx, endpoint, deadlines, span?.traceparent), ctx.cluster.config.timeouts.connect));
  } catch (e) {
    return failed(e, true);
  }
  stream.on("error", () => {}); // its close (with rstCode) says what happened
  const signal = deadlines.signal;
  if (signal.aborted) {
    stream.close(8);
    return failed(signal.reason);
  }
  void body.pipeTo(stream);
  return new Promise<GrpcTry>((resolve) => {
    const done = (outcome: GrpcTry) => {
      stream.off("response", onResponse);
      stream.off("close", onClose);
      signal.removeEventListener("abort", onAbort);
      resolve(outcome);
    };
    const onResponse = (head: IncomingHttpHeaders) => {
      endpoint.lastResponseAt = ctx.upstreamHeadersAt = performance.now();
      done({ ok: true, stream, head, endpoint, startedAt, span });
    };
    const onClose = () => {
      // Reset before any answer: REFUSED_STREAM means the upstream did not process it (safe to retry).
      const code = stream.rstCode ?? 0;
      const refused = code === 7;
      const error = new SwitchyardError({
        code: "upstream_reset", status: 502, source: "upstream", retryable: true,
        message: refused ? "the upstream refused the stream (REFUSED_STREAM)" : `the upstream reset the stream before answering (code ${code})`,
      });
      done(failed(error, refused));
    };
    const onAbort = () => {
      stream.close(8); // CANCEL
      done(failed(signal.reason));
    };
    stream.on("response", onResponse);
    stream.on("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
