/**
 * Traces (OpenTelemetry, W3C Trace Context): one SERVER span per request, one CLIENT span per
 * upstream try, with the stable HTTP semantic-convention attributes. A request's trace is decided
 * once at arrival (continue the caller's or start one; sample); each try sends upstream a
 * traceparent whose parent id is its own client span, with the sampled flag of that decision.
 * Spans end in the log phase (when the response body has ended), and go to the exporter as plain
 * data. Without `telemetry.tracing` none of this runs: the runtime's tracer is undefined.
 */
import type { RequestRecord } from "./request-record.ts";
import { grpcMethodOf } from "../util/grpc-status.ts";
import type { Endpoint } from "../upstream/cluster.ts";
import type { Attributes, FinishedSpan } from "./otlp.ts";
import type { SpanExporter } from "./span-exporter.ts";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, ratioSampled, SAMPLED } from "./trace-context.ts";
import type { TracingConfig } from "./tracing-schema.ts";

/** What a request carries from arrival: the traceparent to send on, and its span when sampled. */
export interface TraceStart {
  readonly traceparent: string;
  readonly span: ServerSpan | undefined;
}

/** W3C §3.3.1.5: a tracestate longer than this may be cut; we then leave it off our spans (it is still forwarded). */
const MAX_TRACESTATE = 512;

export class Tracer {
  private readonly parentBased: boolean;
  private readonly ratio: number;

  constructor(config: TracingConfig, readonly exporter: SpanExporter) {
    this.parentBased = config.sampler === "parent_based";
    this.ratio = config.ratio;
  }

  /** Continues the caller's trace (a valid traceparent) or starts one, and decides sampling. */
  begin(headers: Headers): TraceStart {
    const parent = parseTraceparent(headers.get("traceparent"));
    const traceId = parent?.traceId ?? newTraceId();
    const sampled = this.parentBased && parent !== undefined ? (parent.flags & SAMPLED) !== 0 : ratioSampled(traceId, this.ratio);
    // The caller's other flag bits pass through; bit 0 says what we decided.
    const flags = parent === undefined ? (sampled ? SAMPLED : 0) : sampled ? parent.flags | SAMPLED : parent.flags & ~SAMPLED;
    if (!sampled) {
      // Nothing recorded: the caller's context goes on as it came (in version 00 form, flag cleared).
      return { traceparent: formatTraceparent(traceId, parent?.parentId ?? newSpanId(), flags), span: undefined };
    }
    const spanId = newSpanId();
    const tracestate = parent === undefined ? null : headers.get("tracestate");
    const span = new ServerSpan(this, traceId, spanId, parent?.parentId ?? "", tracestate !== null && tracestate.length <= MAX_TRACESTATE ? tracestate : "", flags);
    return { traceparent: formatTraceparent(traceId, spanId, flags), span };
  }
}

/** RFC 9110 §9 methods plus PATCH; anything else is reported as `_OTHER` (semantic conventions). */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]);

function methodAttributes(method: string, attributes: Attributes): string {
  if (KNOWN_METHODS.has(method)) {
    attributes["http.request.method"] = method;
    return method;
  }
  attributes["http.request.method"] = "_OTHER";
  attributes["http.request.method_original"] = method;
  return "HTTP";
}

/** `host[:port]` (the request's authority) → server.address and server.port. */
function serverAttributes(authority: string, scheme: "http" | "https", attributes: Attributes): void {
  if (authority === "") return;
  const colon = authority.lastIndexOf(":");
  const hasPort = colon !== -1 && colon > authority.lastIndexOf("]");
  attributes["server.address"] = hasPort ? authority.slice(0, colon) : authority;
  attributes["server.port"] = hasPort ? Number(authority.slice(colon + 1)) : scheme === "https" ? 443 : 80;
}

export class ServerSpan {
  /** One per upstream try (and the WebSocket handshake), in order. */
  private clients: ClientSpan[] | undefined;

  constructor(
    private readonly tracer: Tracer,
    readonly traceId: string,
    readonly spanId: string,
    /** The caller's span, "" for a trace started here. */
    readonly parentId: string,
    readonly traceState: string,
    readonly flags: number,
  ) {}

  /** A child span for one upstream try; its traceparent is what that try sends. */
  startClient(endpoint: Endpoint, method: string, resendCount: number): ClientSpan {
    const spanId = newSpanId();
    const client = new ClientSpan(spanId, formatTraceparent(this.traceId, spanId, this.flags), endpoint, method, resendCount, performance.now());
    (this.clients ??= []).push(client);
    return client;
  }

  /** Ends the tries still open (they were given up: a retry follows). */
  endClients(at = performance.now()): void {
    if (this.clients !== undefined) for (const c of this.clients) c.end(at);
  }

  /** The log phase: ends this span and its open client spans, and queues them for export. */
  finish(ctx: RequestRecord, at: number): void {
    const attributes: Attributes = {};
    const method = methodAttributes(ctx.method, attributes);
    attributes["url.path"] = ctx.path;
    attributes["url.scheme"] = ctx.listener.proto;
    serverAttributes(ctx.host, ctx.listener.proto, attributes);
    // Bun.serve answers 1.0 requests as 1.1 and does not expose the version; HTTP/2 and /3 come through their own servers.
    attributes["network.protocol.version"] = ctx.protocol ?? "1.1";
    if (ctx.clientIp !== "") attributes["client.address"] = ctx.clientIp;
    const userAgent = ctx.headers.get("user-agent");
    if (userAgent !== null) attributes["user_agent.original"] = userAgent;
    if (ctx.route !== undefined) attributes["http.route"] = ctx.route.name;
    if (ctx.cluster !== undefined) attributes["switchyard.cluster"] = ctx.cluster.name;
    attributes["switchyard.request_id"] = ctx.requestId;
    if (ctx.attempt > 1) attributes["switchyard.attempts"] = ctx.attempt;
    if (ctx.cacheStatus !== undefined) attributes["switchyard.cache"] = ctx.cacheStatus;
    if (ctx.grpcStatus !== undefined) grpcAttributes(ctx.path, ctx.grpcStatus, attributes);
    const status = ctx.status;
    if (status !== undefined) attributes["http.response.status_code"] = status;
    const error = ctx.error;
    // Semantic conventions: a server span is an error on 5xx, or when it failed without an
    // answer of its own; a client's mistake (4xx, going away) is not, nor is a fallback's answer.
    let failed: string | undefined;
    if (error !== undefined) {
      attributes["error.type"] = error.code;
      if ((status ?? 500) >= 500 || (error.source !== "client" && ctx.fallback === undefined)) failed = error.message;
    } else if (status !== undefined && status >= 500) {
      attributes["error.type"] = String(status);
      failed = `status ${status}`;
    }
    const exporter = this.tracer.exporter;
    if (this.clients !== undefined) for (const c of this.clients) exporter.add(c.finished(this, at));
    exporter.add({
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId: this.parentId,
      traceState: this.traceState,
      name: ctx.route !== undefined ? `${method} ${ctx.route.name}` : method,
      kind: "server",
      startMs: ctx.startedAt,
      endMs: at,
      attributes,
      error: failed,
    });
  }
}

/** RPC semantic conventions for a native gRPC call. */
function grpcAttributes(path: string, code: number, attributes: Attributes): void {
  attributes["rpc.system"] = "grpc";
  const method = grpcMethodOf(path);
  if (method !== undefined) {
    attributes["rpc.service"] = method.service;
    attributes["rpc.method"] = method.method;
  }
  attributes["rpc.grpc.status_code"] = code;
}

export class ClientSpan {
  private status: number | undefined;
  private errorCode: string | undefined;
  private endedAt: number | undefined;

  constructor(
    readonly spanId: string,
    /** The traceparent this try sends upstream. */
    readonly traceparent: string,
    private readonly endpoint: Endpoint,
    private readonly method: string,
    private readonly resendCount: number,
    private readonly startedAt: number,
  ) {}

  /** The try's answer (its status) or failure (an error code); the span stays open until `end`. */
  settle(status: number | undefined, errorCode: string | undefined): void {
    this.status = status;
    this.errorCode = errorCode;
  }

  end(at = performance.now()): void {
    this.endedAt ??= at;
  }

  finished(server: ServerSpan, at: number): FinishedSpan {
    const attributes: Attributes = {};
    const name = methodAttributes(this.method, attributes);
    attributes["server.address"] = this.endpoint.hostname;
    attributes["server.port"] = this.endpoint.port;
    attributes["url.scheme"] = this.endpoint.tls ? "https" : "http";
    if (this.resendCount > 0) attributes["http.request.resend_count"] = this.resendCount;
    if (this.status !== undefined) attributes["http.response.status_code"] = this.status;
    // A client span is an error on any 4xx/5xx answer, or when the try failed (semantic conventions).
    let failed: string | undefined;
    if (this.errorCode !== undefined) {
      attributes["error.type"] = this.errorCode;
      if (this.errorCode !== "hedge_cancelled") failed = this.errorCode; // the other try answered: not a failure
    } else if (this.status !== undefined && this.status >= 400) {
      attributes["error.type"] = String(this.status);
      failed = `status ${this.status}`;
    }
    return {
      traceId: server.traceId,
      spanId: this.spanId,
      parentSpanId: server.spanId,
      traceState: server.traceState,
      name,
      kind: "client",
      startMs: this.startedAt,
      endMs: this.endedAt ?? at,
      attributes,
      error: failed,
    };
  }
}
