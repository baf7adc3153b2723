/**
 * Phase 8's access log: one JSON line per request. Lines are gathered here into batches of
 * BATCH_CHARS, each handed to the file's FileSink whole, and what is left is flushed on a short
 * timer, on reopen and on shutdown: about one write(2) per 64 KiB of log. (A FileSink given one line
 * at a time writes at the end of every event-loop tick, whatever its highWaterMark: under load a
 * syscall per line or two, and on a file in a watched directory — the config's, see util/watch-path.ts — an
 * inotify event that wakes the watcher thread each time. Both cost far more than the lines.)
 * Header values are never logged; configured query parameters are redacted.
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

/** Lines gathered before they are handed to the FileSink in one write (UTF-16 units, near enough bytes). */
const BATCH_CHARS = 64 * 1024;

/** One log file (or stdout/stderr): its sink and the lines not yet handed to it, in order. */
interface LogTarget {
  readonly sink: FileSink;
  pending: string;
}

const targets = new Map<string, LogTarget>();
let flushTimer: Timer | undefined;

function targetFor(path: string): LogTarget {
  let target = targets.get(path);
  if (!target) {
    // A file is opened for appending: Bun.file(path).writer() writes from offset 0 over old lines.
    const file = path === "stdout" ? Bun.stdout : path === "stderr" ? Bun.stderr : Bun.file(openSync(path, "a"));
    target = { sink: file.writer({ highWaterMark: BATCH_CHARS }), pending: "" };
    targets.set(path, target);
  }
  if (!flushTimer) {
    flushTimer = setInterval(flushAll, 200);
    flushTimer.unref();
  }
  return target;
}

/** Hands the gathered lines to the sink (which writes them, or keeps what a full pipe refuses). */
function drain(target: LogTarget): void {
  if (target.pending === "") return;
  target.sink.write(target.pending);
  target.pending = "";
}

function append(path: string, line: string): void {
  const target = targetFor(path);
  target.pending += line;
  if (target.pending.length >= BATCH_CHARS) drain(target);
}

function flushTarget(target: LogTarget): void {
  drain(target);
  target.sink.flush();
}

export function flushAll(): void {
  for (const target of targets.values()) flushTarget(target);
}

/** Closes log files so the next line reopens them: after logrotate has moved them (done on every reload, e.g. SIGHUP). */
export function reopenAll(): void {
  for (const [path, target] of targets) {
    if (path === "stdout" || path === "stderr") continue;
    targets.delete(path);
    drain(target); // the lines gathered so far belong to the old file
    void target.sink.end();
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
  targetFor(config.path);
  return {
    write(ctx) {
      append(config.path, `${accessLogLine(ctx, redacted, headerNames, secretHeaders)}\n`);
    },
    flush: () => flushTarget(targetFor(config.path)),
  };
}
