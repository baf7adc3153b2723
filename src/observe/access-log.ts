/**
 * Phase 8's access log: one JSON line per request. Lines are buffered by a FileSink and flushed
 * on a short timer, so logging never costs a syscall per request. Header values are never logged;
 * configured query parameters are redacted.
 */
import type { FileSink } from "bun";
import type { AccessLogConfig } from "../config/schema.ts";
import type { ProxyContext } from "../proxy/context.ts";

export interface AccessLog {
  write(ctx: ProxyContext): void;
  flush(): void;
}

const sinks = new Map<string, FileSink>();
let flushTimer: Timer | undefined;

function sinkFor(path: string): FileSink {
  let sink = sinks.get(path);
  if (!sink) {
    const target = path === "stdout" ? Bun.stdout : path === "stderr" ? Bun.stderr : Bun.file(path);
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

export function accessLogLine(ctx: ProxyContext, redacted: ReadonlySet<string>): string {
  const now = performance.now();
  const query = redactQuery(ctx.query, redacted);
  return JSON.stringify({
    time: new Date().toISOString(),
    request_id: ctx.requestId,
    listener: ctx.listener.name,
    client_ip: ctx.clientIp,
    route: ctx.route?.name ?? null,
    cluster: ctx.cluster?.name ?? null,
    endpoint: ctx.endpoint?.address ?? null,
    method: ctx.method,
    host: ctx.host,
    path: query === "" ? ctx.path : `${ctx.path}?${query}`,
    status: ctx.status ?? 0,
    bytes_in: ctx.bytesIn,
    bytes_out: ctx.bytesOut,
    attempts: ctx.attempt,
    total_ms: round(now - ctx.startedAt),
    upstream_ms: ctx.upstreamStartedAt === undefined ? null : round((ctx.upstreamHeadersAt ?? now) - ctx.upstreamStartedAt),
    error: ctx.error?.code ?? null,
  });
}

export function createAccessLog(config: AccessLogConfig): AccessLog {
  if (!config.enabled) return { write() {}, flush() {} };
  const redacted = new Set(config.redact_query.map((q) => q.toLowerCase()));
  const sink = sinkFor(config.path);
  return {
    write(ctx) {
      sink.write(`${accessLogLine(ctx, redacted)}\n`);
    },
    flush: () => sink.flush(),
  };
}
