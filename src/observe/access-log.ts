/**
 * Phase 8's access log: one JSON line per request. Lines are buffered by a FileSink and flushed
 * on a short timer, so logging never costs a syscall per request. Header values are never logged;
 * configured query parameters are redacted.
 */
import type { FileSink } from "bun";
import { openSync } from "node:fs";
import type { AccessLogConfig } from "../config/schema.ts";
import type { RequestRecord } from "./request-record.ts";
import { instance } from "../fleet/instance.ts";

/** What a log line is made of: a proxied request's context, or an egress exchange's record. */
export type LoggedRequest = Omit<RequestRecord, "listener" | "route" | "error"> & {
  readonly listener: { readonly name: string };
  readonly route?: { readonly name: string };
  readonly error?: { readonly code: string };
};

export interface AccessLog {
  write(ctx: LoggedRequest): void;
  flush(): void;
}

const sinks = new Map<string, FileSink>();
let flushTimer: Timer | undefined;

function sinkFor(path: string): FileSink {
  let sink = sinks.get(path);
  if (!sink) {
    // A file is opened for appending: Bun.file(path).writer() writes from offset 0 over old lines.
    const target = path === "stdout" ? Bun.stdout : path === "stderr" ? Bun.stderr : Bun.file(openSync(path, "a"));
    sink = target.writer({ highWaterMark: 64 * 1024 });
    sinks.set(path, sink);
  }
  if (!flushTimer) {
    flushTimer = setInterval(flushAll, 200);
    flushTimer.unref();
  }
  return sink;
}

export function flushAll(): void {
  for (const sink of sinks.values()) sink.flush();
}

/** Closes log files so the next line reopens them: after logrotate has moved them (done on every reload, e.g. SIGHUP). */
export function reopenAll(): void {
  for (const [path, sink] of sinks) {
    if (path === "stdout" || path === "stderr") continue;
    sinks.delete(path);
    void sink.end();
  }
}

export function redactQuery(query: string, redacted: ReadonlySet<string>): string {
  if (query === "" || redacted.size === 0) return query;
  return query
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const rawName = eq === -1 ? pair : pair.slice(0, eq);
      let name: string;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, " ")).toLowerCase();
      } catch {
        name = rawName.toLowerCase();
      }
      return redacted.has(name) && eq !== -1 ? `${rawName}=[redacted]` : pair;
    })
    .join("&");
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Header values that are never written to a log, whatever the config asks. */
const SECRET_HEADERS = ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"];
const DEFAULT_SECRET_HEADERS: ReadonlySet<string> = new Set(SECRET_HEADERS);

/** Where credentials travel besides the usual places (the auth providers' headers and query parameters): never logged. */
export interface LogSecrets {
  readonly headers: readonly string[];
  readonly query: readonly string[];
}

function loggedHeaders(headers: Headers, names: readonly string[], secret: ReadonlySet<string>): Record<string, string> | undefined {
  if (names.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = headers.get(name);
    if (value !== null) out[name] = secret.has(name) ? "[redacted]" : value;
  }
  return out;
}

export function accessLogLine(ctx: LoggedRequest, redacted: ReadonlySet<string>, headerNames: readonly string[] = [], secretHeaders = DEFAULT_SECRET_HEADERS): string {
  const now = performance.now();
  const query = redactQuery(ctx.query, redacted);
  return JSON.stringify({
    time: new Date().toISOString(),
    request_id: ctx.requestId,
    listener: ctx.listener.name,
    // Which machine and region answered (Fly.io's FLY_MACHINE_ID and FLY_REGION, else the host name).
    instance: instance.id,
    region: instance.region ?? null,
    client_ip: ctx.clientIp,
    route: ctx.route?.name ?? null,
    cluster: ctx.cluster?.name ?? null,
    endpoint: ctx.endpoint?.address ?? null,
    method: ctx.method,
    protocol: ctx.protocol ?? "1.1",
    host: ctx.host,
    path: query === "" ? ctx.path : `${ctx.path}?${query}`,
    status: ctx.status ?? 0,
    bytes_in: ctx.bytesIn,
    bytes_out: ctx.bytesOut,
    attempts: ctx.attempt,
    total_ms: round(now - ctx.startedAt),
    upstream_ms: ctx.upstreamStartedAt === undefined ? null : round((ctx.upstreamHeadersAt ?? now) - ctx.upstreamStartedAt),
    error: ctx.error?.code ?? null,
    grpc_status: ctx.grpcStatus,
    fallback: ctx.fallback,
    cache: ctx.cacheStatus,
    // Who the caller is (never the credential): provider, subject, tier.
    auth: ctx.auth === undefined ? undefined : { provider: ctx.auth.provider, subject: ctx.auth.subject ?? null, tier: ctx.auth.tier },
    waf: ctx.waf,
    transform_skipped: ctx.transformSkipped,
    headers: loggedHeaders(ctx.headers, headerNames, secretHeaders),
    tries: ctx.tries !== undefined && ctx.tries.length > 1 ? ctx.tries : undefined,
    calls: ctx.calls,
  });
}

export function createAccessLog(config: AccessLogConfig, secrets: LogSecrets = { headers: [], query: [] }): AccessLog {
  if (!config.enabled) return { write() {}, flush() {} };
  const redacted = new Set([...config.redact_query, ...secrets.query].map((q) => q.toLowerCase()));
  const headerNames = config.headers.map((h) => h.toLowerCase());
  const secretHeaders = new Set([...SECRET_HEADERS, ...secrets.headers.map((h) => h.toLowerCase())]);
  sinkFor(config.path);
  return {
    write(ctx) {
      sinkFor(config.path).write(`${accessLogLine(ctx, redacted, headerNames, secretHeaders)}\n`);
    },
    flush: () => sinkFor(config.path).flush(),
  };
}
