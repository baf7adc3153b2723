/**
 * OTLP/HTTP span export (protobuf): a bounded queue, batches sent when full or after the flush
 * interval, one export request in flight at a time, bounded retries of what the collector could
 * not take (OTLP/HTTP spec: 429, 502, 503, 504 and network errors, with backoff), and a flush at
 * shutdown. The request path only pushes to an array: a full queue drops the span and counts it,
 * it never waits and never grows.
 */
import { hostname } from "node:os";
import pkg from "../../package.json" with { type: "json" };
import { instance } from "../fleet/instance.ts";
import { metrics, traceQueue } from "./metrics.ts";
import type { FinishedSpan, SpanSource } from "./otlp.ts";
import type { TracingConfig } from "./tracing-schema.ts";
import { retryAfterMs } from "../util/retry-after.ts";

/** OTLP/HTTP §Failures: these answers mean "try again later"; every other non-2xx is final. */
const RETRYABLE = new Set([429, 502, 503, 504]);
const QUEUE_FULL = ["queue_full"] as const;
const SHUTDOWN = ["shutdown"] as const;
/** At most one warning line per exporter this often (a dead collector must not flood the log). */
const WARN_EVERY_MS = 60_000;

export function spanSource(config: TracingConfig): SpanSource {
  return {
    resource: {
      "service.name": config.service_name,
      "service.version": pkg.version,
      // The machine (FLY_MACHINE_ID, else the host name) and its region, as the access log and /fleet name them.
      "service.instance.id": instance.id,
      ...(instance.region === undefined ? {} : { "cloud.region": instance.region }),
      "host.name": hostname(),
      "process.pid": process.pid,
      "process.runtime.name": "bun",
      "process.runtime.version": Bun.version,
      ...config.resource,
    },
    scope: { name: "switchyard", version: pkg.version },
  };
}

type PostResult = { ok: true } | { ok: false; retryable: boolean; retryAfter?: number; reason: string };

export class SpanExporter {
  private queue: FinishedSpan[] = [];
  private timer: Timer | undefined;
  private sending: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;
  /** While flushing: the sender keeps going past partial batches. */
  private draining = false;
  /** Aborted when a flush runs out of time: ends the export in flight and any backoff wait. */
  private cut = new AbortController();
  private lastWarnAt = Number.NEGATIVE_INFINITY;
  private readonly headers: Record<string, string>;
  private readonly source: SpanSource;
  /** No runtime uses it any more; it goes once its queue is sent. */
  closed = false;

  constructor(readonly config: TracingConfig) {
    this.headers = { ...config.headers, "content-type": "application/x-protobuf" };
    this.source = spanSource(config);
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Called by the log phase: O(1), never waits, never throws. */
  add(span: FinishedSpan): void {
    if (this.queue.length >= this.config.max_queue_size) {
      metrics.traceSpansDropped.inc(QUEUE_FULL);
      return;
    }
    this.queue.push(span);
    traceQueue.spans++;
    live.add(this);
    if (this.sending !== undefined) return; // the sender picks it up when its export is done
    if (this.queue.length >= this.config.max_batch_size) this.schedule(0);
    else if (this.timer === undefined) this.schedule(this.config.flush_interval);
  }

  /** Sends everything queued, for at most `timeoutMs`; what is still queued then is dropped (counted). */
  flush(timeoutMs = this.config.export_timeout): Promise<void> {
    return (this.flushing ??= this.drain(timeoutMs).finally(() => (this.flushing = undefined)));
  }

  private async drain(timeoutMs: number): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.draining = true;
    const cut = (this.cut = new AbortController());
    const deadline = setTimeout(() => cut.abort(), timeoutMs);
    try {
      while ((this.queue.length > 0 || this.sending !== undefined) && !cut.signal.aborted) await this.send();
    } finally {
      clearTimeout(deadline);
      this.draining = false;
    }
    if (this.queue.length > 0) {
      metrics.traceSpansDropped.inc(SHUTDOWN, this.queue.length);
      this.take(this.queue.length);
    }
    if (this.closed) live.delete(this);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    // Unref'd: pending spans never keep the process alive; shutdown flushes them explicitly.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.send();
    }, ms);
    this.timer.unref();
  }

  private send(): Promise<void> {
    return (this.sending ??= this.sendBatches().finally(() => {
      this.sending = undefined;
      if (this.draining) return;
      if (this.queue.length >= this.config.max_batch_size) this.schedule(0);
      else if (this.queue.length > 0) this.schedule(this.config.flush_interval);
      else if (this.closed) live.delete(this);
    }));
  }

  private async sendBatches(): Promise<void> {
    while (this.queue.length > 0 && !this.cut.signal.aborted) {
      await this.exportBatch(this.take(Math.min(this.queue.length, this.config.max_batch_size)));
      if (this.queue.length < this.config.max_batch_size && !this.draining) return;
    }
  }

  private take(n: number): FinishedSpan[] {
    traceQueue.spans -= n;
    return this.queue.splice(0, n);
  }

  private async exportBatch(batch: FinishedSpan[]): Promise<void> {
    let body: Uint8Array;
    try {
      // The OTLP encoder (and protobuf) is loaded with the first batch: tracing off never loads it.
      body = (require("./otlp.ts") as typeof import("./otlp.ts")).encodeSpans(this.source, batch);
    } catch (e) {
      this.fail(batch.length, `encoding failed: ${String(e)}`);
      return;
    }
    const { attempts, initial_backoff, max_backoff } = this.config.retry;
    for (let attempt = 1; ; attempt++) {
      const result = await this.post(body);
      if (result.ok) {
        metrics.traceSpansExported.inc([], batch.length);
        return;
      }
      if (!result.retryable || attempt >= attempts || this.cut.signal.aborted) {
        this.fail(batch.length, result.reason);
        return;
      }
      // Exponential with equal jitter; a Retry-After is honoured, never beyond max_backoff.
      const step = Math.min(max_backoff, initial_backoff * 2 ** (attempt - 1));
      const wait = Math.min(max_backoff, result.retryAfter ?? step / 2 + (Math.random() * step) / 2);
      if (!(await this.sleep(wait))) {
        this.fail(batch.length, `${result.reason}; shutdown came before the retry`);
        return;
      }
    }
  }

  private async post(body: Uint8Array): Promise<PostResult> {
    const signal = AbortSignal.any([AbortSignal.timeout(this.config.export_timeout), this.cut.signal]);
    try {
      const res = await fetch(this.config.endpoint, {
        method: "POST",
        headers: this.headers,
        body,
        signal,
        redirect: "manual",
        proxy: false,
      } as RequestInit);
      await discardBody(res);
      if (res.status >= 200 && res.status < 300) return { ok: true };
      return {
        ok: false,
        retryable: RETRYABLE.has(res.status),
        retryAfter: RETRYABLE.has(res.status) ? retryAfterMs(res.headers.get("retry-after")) : undefined,
        reason: `the collector answered ${res.status}`,
      };
    } catch (e) {
      const timedOut = signal.aborted && !this.cut.signal.aborted;
      return { ok: false, retryable: true, reason: timedOut ? `no answer within ${this.config.export_timeout}ms` : `the collector could not be reached: ${String(e)}` };
    }
  }

  /** Waits `ms` unless a flush runs out of time first (then false). */
  private sleep(ms: number): Promise<boolean> {
    const cut = this.cut.signal;
    if (cut.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve(!cut.aborted);
      };
      const timer = setTimeout(done, ms);
      cut.addEventListener("abort", done, { once: true });
    });
  }

  private fail(spans: number, reason: string): void {
    metrics.traceSpansFailed.inc([], spans);
    const now = performance.now();
    if (now - this.lastWarnAt < WARN_EVERY_MS) return;
    this.lastWarnAt = now;
    console.error(JSON.stringify({ time: new Date().toISOString(), level: "warn", msg: "trace export failed; spans lost (see switchyard_trace_spans_failed_total)", endpoint: this.config.endpoint, spans, reason }));
  }
}

/** An answer's body is read (so the connection can be reused), but no more than this of it. */
const MAX_ANSWER_BYTES = 64 * 1024;

async function discardBody(res: Response): Promise<void> {
  const reader = res.body?.getReader();
  if (reader === undefined) return;
  try {
    for (let read = 0; ;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      read += chunk.value.byteLength;
      if (read > MAX_ANSWER_BYTES) return void (await reader.cancel());
    }
  } catch {
    // A broken answer body changes nothing: the status has spoken.
  }
}

/** Exporters with spans queued or in flight, or still in use: what shutdown must flush. */
const live = new Set<SpanExporter>();
/** One exporter per distinct config, shared by the runtimes that use it (a reload keeps its queue). */
const shared = new Map<string, { exporter: SpanExporter; users: number }>();

export function acquireExporter(config: TracingConfig): SpanExporter {
  const key = JSON.stringify(config);
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = { exporter: new SpanExporter(config), users: 0 };
    shared.set(key, entry);
  }
  entry.users++;
  return entry.exporter;
}

/** A runtime is done with its exporter; the last user closes it, and what it still holds is sent at once. */
export function releaseExporter(exporter: SpanExporter): void {
  const key = JSON.stringify(exporter.config);
  const entry = shared.get(key);
  if (entry === undefined || entry.exporter !== exporter || --entry.users > 0) return;
  shared.delete(key);
  exporter.closed = true;
  if (exporter.queued > 0) void exporter.flush();
  else live.delete(exporter);
}

/** At shutdown: every exporter sends what it holds, each within its export_timeout. */
export async function flushTraces(): Promise<void> {
  await Promise.all([...live].map((e) => e.flush()));
}
