/**
 * Native gRPC proxying: a gRPC call that came over HTTP/2 (the listener's engine offers its
 * stream: grpc/downstream.ts) goes to an HTTP/2 or h2c upstream with trailers end to end — the
 * pipeline hands it here after routing and filters, as it hands WebSocket upgrades to
 * websocket.ts. Unary and streaming both ways, with backpressure (each side's HTTP/2 window
 * holds the other back); `grpc-timeout` honoured and capped by the route's request timeout;
 * cancellation both ways (RST_STREAM CANCEL); retries on gRPC status codes of trailers-only
 * answers (and on connect failures and refused streams) while the request body can be sent again.
 * Proxy-side failures are trailers-only answers with the status a gRPC client can read.
 *
 * Logged like any request; `status` is the HTTP status the gRPC status stands for (200 for OK,
 * 503 for UNAVAILABLE …: grpc/status.ts), so error rates, the breaker and the status page see
 * gRPC failures; `grpc_status` is what the client got.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import type { ClientSpan } from "../../observe/tracing.ts";
import { errors, SwitchyardError } from "../../util/errors.ts";
import type { RoutedContext } from "../context.ts";
import { Deadlines } from "../deadlines.ts";
import { admit, mayRetry, select, timeLeft } from "../exchange.ts";
import { clientAborted, log, releaseConnection, releaseRetry, responseFilters } from "../outcome.ts";
import { retriesError, retriesGrpcStatus, retriesStatus } from "../retry.ts";
import { BodyTee } from "./body-tee.ts";
import type { GrpcDownstream } from "./downstream.ts";
import { encodeGrpcMessage, GrpcStatus, grpcStatusOfError, grpcStatusOfHttp, grpcStatusOfReset, httpStatusOfGrpc, parseGrpcTimeout } from "../../util/grpc-status.ts";
import { type GrpcTry, grpcTry } from "./try.ts";

/** Response fields never passed on (hop-by-hop, RFC 9113 §8.2.2), and pseudo-headers. */
const DROPPED = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length"]);

/** What the engine ignores (the call was answered on the stream itself). */
const ANSWERED = new Response(null, { status: 200 });

export async function proxyGrpc(ctx: RoutedContext, downstream: GrpcDownstream): Promise<Response> {
  downstream.claim();
  const route = ctx.route;
  const cluster = ctx.cluster;
  // The call's deadline: grpc-timeout, capped by what is left of the route's request timeout.
  const callTimeout = parseGrpcTimeout(ctx.headers.get("grpc-timeout"));
  const routeLeft = timeLeft(ctx);
  if (routeLeft < 0) return finish(ctx, downstream, errors.requestTimeout());
  const limit = callTimeout === undefined ? routeLeft : routeLeft > 0 ? Math.min(routeLeft, callTimeout) : callTimeout;
  const deadlines = new Deadlines(limit, route.config.timeouts.idle);
  const byCaller = callTimeout !== undefined && limit === callTimeout;
  const onClientGone = () => deadlines.fail(clientAborted());
  ctx.request.signal.addEventListener("abort", onClientGone, { once: true });
  try {
    const shed = admit(ctx);
    if (shed !== undefined) return finish(ctx, downstream, shed);
    const policy = route.config.retry;
    const body = new BodyTee(ctx.request.body, policy !== undefined && policy.attempts > 1 ? policy.buffer_body : 0);
    const maxBody = route.config.max_request_body;
    body.onChunk = (n) => {
      ctx.bytesIn += n;
      deadlines.touch();
      // The route's body limit counts a client stream's messages as they pass (RESOURCE_EXHAUSTED).
      if (maxBody !== undefined && ctx.bytesIn > maxBody) deadlines.fail(errors.bodyTooLarge(maxBody));
    };
    for (;;) {
      const slot = await connectionSlot(ctx, deadlines.signal);
      if (slot !== undefined) return finish(ctx, downstream, slot, body);
      const endpoint = select(ctx);
      if (endpoint === undefined) return finish(ctx, downstream, errors.noEndpoint(cluster.name), body);
      const span = ctx.span?.startClient(endpoint, "POST", ctx.attempt - 1);
      const outcome = await grpcTry(ctx, endpoint, deadlines, body, span);
      releaseRetry(ctx, ctx.cluster);
      recordTry(ctx, outcome);
      if (!outcome.ok) {
        cluster.report(endpoint, { gatewayFailure: true }, outcome.error);
        const retry = policy !== undefined && body.replayable && (retriesError(policy, outcome.error) || (outcome.refused && outcome.error.source === "upstream"));
        if (retry && !deadlines.signal.aborted && (await mayRetry(ctx, policy, undefined))) continue;
        return finish(ctx, downstream, timeoutMessage(outcome.error, byCaller), body);
      }
      const head = outcome.head;
      const httpStatus = Number(head[":status"] ?? 0);
      const headStatus = head["grpc-status"];
      // An answer that is not gRPC (an HTTP error from something in between), or a trailers-only one.
      const early = httpStatus !== 200 ? grpcStatusOfHttp(httpStatus) : headStatus !== undefined ? Number(headStatus) : undefined;
      const retryable = early !== undefined && early !== GrpcStatus.OK && policy !== undefined && body.replayable &&
        (retriesGrpcStatus(policy, early) || (httpStatus !== 200 && retriesStatus(policy, httpStatus)));
      if (retryable && (await mayRetry(ctx, policy, undefined))) {
        outcome.stream.close(8);
        cluster.report(endpoint, { status: httpStatus !== 200 ? httpStatus : httpStatusOfGrpc(early) });
        outcome.span?.end();
        continue;
      }
      return await deliver(ctx, downstream, outcome, deadlines, body, early, httpStatus);
    }
  } finally {
    ctx.request.signal.removeEventListener("abort", onClientGone);
    deadlines.clear();
  }
}

/** Waits for one of the cluster's connection slots (max_connections, max_pending); an error when there is none. */
async function connectionSlot(ctx: RoutedContext, signal: AbortSignal): Promise<SwitchyardError | undefined> {
  const limits = ctx.cluster.limits;
  let slot = limits.tryAcquireConnection() || limits.acquireConnection(() => signal);
  if (slot !== true) slot = await slot;
  if (!slot) return signal.aborted ? SwitchyardError.from(signal.reason) : errors.overloaded(ctx.cluster.name, "max_connections");
  ctx.connectionHeld = true;
  return undefined;
}

/** A deadline the caller set (grpc-timeout) says so, rather than "the route's request timeout". */
function timeoutMessage(error: SwitchyardError, byCaller: boolean): SwitchyardError {
  if (!byCaller || error.code !== "upstream_timeout") return error;
  return new SwitchyardError({ code: "upstream_timeout", status: 504, source: "upstream", message: "the call's deadline (grpc-timeout) expired" });
}

function recordTry(ctx: RoutedContext, o: GrpcTry): void {
  const status = o.ok ? Number(o.head[":status"] ?? 0) : null;
  (ctx.tries ??= []).push({ endpoint: o.endpoint.address, status, error: o.ok ? null : o.error.code, ms: Math.round((performance.now() - o.startedAt) * 100) / 100 });
  o.span?.settle(status ?? undefined, o.ok ? undefined : o.error.code);
  if (!o.ok) o.span?.end();
}

/** The answer's metadata for the client: hop-by-hop fields dropped, the route's response rules and filters applied. */
function responseMetadata(ctx: RoutedContext, head: IncomingHttpHeaders, status: number): OutgoingHttpHeaders {
  const headers = new Headers();
  for (const name in head) {
    if (name.charCodeAt(0) === 58 || DROPPED.has(name)) continue;
    const value = head[name];
    if (typeof value === "string") headers.append(name, value);
    else if (value !== undefined) for (const v of value) headers.append(name, v);
  }
  ctx.route.responseHeaders?.apply(headers);
  headers.set("x-request-id", ctx.requestId);
  responseFilters(ctx, headers, status);
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, name) => (out[name] = value));
  return out;
}

/** Trailers as received, minus what must not be forwarded. */
function forwardTrailers(trailers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in trailers) if (name.charCodeAt(0) !== 58 && !DROPPED.has(name)) out[name] = trailers[name];
  return out;
}

/**
 * Relays the answer: the head, then messages with backpressure, then the trailers — or, when the
 * upstream breaks off or a deadline passes, trailers with the status that says so.
 */
async function deliver(
  ctx: RoutedContext, downstream: GrpcDownstream, o: GrpcTry & { ok: true }, deadlines: Deadlines, body: BodyTee, early: number | undefined, httpStatus: number,
): Promise<Response> {
  const { stream, head, endpoint, span } = o;
  if (early !== undefined) {
    // Trailers-only (or an HTTP error): one HEADERS frame to the client.
    stream.close(8);
    const code = early;
    const message = httpStatus !== 200 ? `the upstream answered HTTP ${httpStatus}` : String(head["grpc-message"] ?? "");
    ctx.cluster.report(endpoint, { status: httpStatus !== 200 ? httpStatus : httpStatusOfGrpc(code) });
    const trailers = httpStatus !== 200 ? { "grpc-status": String(code), "grpc-message": encodeGrpcMessage(message), "x-request-id": ctx.requestId } : responseMetadata(ctx, head, 200);
    downstream.end(trailers);
    return done(ctx, code, body, span);
  }
  let trailers: IncomingHttpHeaders | undefined;
  stream.on("trailers", (t: IncomingHttpHeaders) => (trailers = t));
  downstream.respond(responseMetadata(ctx, head, 200));
  const onAbort = () => stream.close(8);
  deadlines.signal.addEventListener("abort", onAbort, { once: true });
  let broken = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      ctx.bytesOut += chunk.byteLength;
      deadlines.touch();
      if (!(await downstream.write(chunk))) {
        stream.close(8); // the client went away: cancel upstream
        break;
      }
    }
  } catch {
    broken = true;
  } finally {
    deadlines.signal.removeEventListener("abort", onAbort);
  }
  let code: number;
  if (deadlines.signal.aborted) {
    const error = SwitchyardError.from(deadlines.signal.reason);
    ctx.error = error;
    code = grpcStatusOfError(error);
    if (!downstream.closed) downstream.end({ "grpc-status": String(code), "grpc-message": encodeGrpcMessage(error.message) });
  } else if (downstream.closed) {
    ctx.error = clientAborted();
    code = GrpcStatus.CANCELLED;
  } else if (trailers !== undefined && !broken) {
    code = Number(trailers["grpc-status"] ?? GrpcStatus.UNKNOWN);
    downstream.end(forwardTrailers(trailers));
  } else {
    // The upstream reset the stream, or its connection died mid-answer (node reports that as CANCEL too).
    const rst = stream.rstCode ?? 0;
    const connectionLost = stream.session === undefined || stream.session.destroyed || stream.session.closed;
    code = connectionLost || rst === 0 || rst === 2 ? GrpcStatus.UNAVAILABLE : grpcStatusOfReset(rst);
    ctx.error = new SwitchyardError({ code: "upstream_reset", status: 502, source: "upstream", message: "the upstream broke off the call before its trailers" });
    downstream.end({ "grpc-status": String(code), "grpc-message": encodeGrpcMessage(ctx.error.message) });
  }
  ctx.cluster.report(endpoint, ctx.error?.source === "upstream" ? { gatewayFailure: true } : { status: httpStatusOfGrpc(code) }, ctx.error);
  return done(ctx, code, body, span);
}

/** The log phase of a call that got an answer (or broke off after one). */
function done(ctx: RoutedContext, code: number, body: BodyTee, span: ClientSpan | undefined): Response {
  if (!body.complete) body.cancel();
  ctx.grpcStatus = code;
  ctx.status = httpStatusOfGrpc(code);
  span?.end();
  log(ctx);
  return ANSWERED;
}

/** A call the proxy answers itself (no upstream answer to relay): trailers-only with the failure's status. */
function finish(ctx: RoutedContext, downstream: GrpcDownstream, error: SwitchyardError, body?: BodyTee): Response {
  body?.cancel();
  releaseConnection(ctx, ctx.cluster);
  const code = grpcStatusOfError(error);
  ctx.error = error;
  ctx.grpcStatus = code;
  ctx.status = error.status;
  if (!downstream.closed) {
    const headers = new Headers({ "grpc-status": String(code), "grpc-message": encodeGrpcMessage(error.message), "x-request-id": ctx.requestId });
    responseFilters(ctx, headers, error.status);
    const trailers: OutgoingHttpHeaders = {};
    headers.forEach((value, name) => (trailers[name] = value));
    downstream.end(trailers);
  }
  log(ctx);
  return ANSWERED;
}
