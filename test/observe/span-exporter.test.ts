/** The OTLP exporter on its own against a real collector: batching, the bounded queue, retries, timeouts, flush. */
import { afterEach, expect, test } from "bun:test";
import { metrics, traceQueue } from "../../src/observe/metrics.ts";
import { type FinishedSpan, unixNano } from "../../src/observe/otlp.ts";
import { SpanExporter } from "../../src/observe/span-exporter.ts";
import { newSpanId, newTraceId } from "../../src/observe/trace-context.ts";
import { TracingSchema } from "../../src/observe/tracing-schema.ts";
import { type Collector, startCollector } from "../helpers/collector.ts";
import { waitFor } from "../helpers/tmp.ts";

const stops: (() => void)[] = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

function collector(answer?: Parameters<typeof startCollector>[0]): Collector {
  const c = startCollector(answer);
  stops.push(c.stop);
  return c;
}

function exporter(endpoint: string, config: Record<string, unknown> = {}): SpanExporter {
  return new SpanExporter(TracingSchema.parse({ endpoint, ...config }));
}

function span(name: string): FinishedSpan {
  const now = performance.now();
  return { traceId: newTraceId(), spanId: newSpanId(), parentSpanId: "", traceState: "", name, kind: "server", startMs: now - 5, endMs: now, attributes: { "http.request.method": "GET", n: 1.5, ok: true } };
}

const counters = () => ({
  exported: metrics.traceSpansExported.value([]),
  failed: metrics.traceSpansFailed.value([]),
  full: metrics.traceSpansDropped.value(["queue_full"]),
  shutdown: metrics.traceSpansDropped.value(["shutdown"]),
});
const delta = (before: ReturnType<typeof counters>) => {
  const now = counters();
  return { exported: now.exported - before.exported, failed: now.failed - before.failed, full: now.full - before.full, shutdown: now.shutdown - before.shutdown };
};

test("a full batch goes at once, a partial one after flush_interval; values and kinds survive encoding", async () => {
  const c = collector();
  const e = exporter(c.url, { max_batch_size: 3, flush_interval: "300ms" });
  const before = counters();
  for (let i = 0; i < 4; i++) e.add(span(`s${i}`));
  await waitFor("first batch", () => c.exports.length === 1);
  expect(c.exports[0]!.spans).toBe(3);
  const started = performance.now();
  await waitFor("second batch", () => c.exports.length === 2, 3000);
  expect(performance.now() - started).toBeGreaterThan(150);
  expect(c.spans.map((s) => s.name)).toEqual(["s0", "s1", "s2", "s3"]);
  expect(c.spans[0]!.attributes).toEqual({ "http.request.method": "GET", n: 1.5, ok: true });
  expect(c.spans[0]!.endNs - c.spans[0]!.startNs).toBeGreaterThan(4_000_000n);
  expect(c.spans[0]!.endNs - c.spans[0]!.startNs).toBeLessThan(6_000_000n);
  // Counted once the collector's answer is in (it records the spans just before answering).
  await waitFor("counted", () => delta(before).exported === 4);
  expect(delta(before)).toEqual({ exported: 4, failed: 0, full: 0, shutdown: 0 });
  expect(e.queued).toBe(0);
});

test("every kind of value encodes exactly (UTF-8 of any width, lone surrogates, big and negative numbers, long strings); times are exact", async () => {
  const c = collector();
  const e = exporter(c.url, { flush_interval: "1ms", resource: { "deployment.environment": "prüfung", "shard.offset": -5, ratio: 0.25 } });
  const attributes = {
    latin1: "caf\u00e9 \u00ff", emoji: "\u{1F600} ok", lone: "a\uD800b", empty: "", long: "x".repeat(70_000),
    zero: 0, negative: -42, big: Number.MAX_SAFE_INTEGER, huge: 2 ** 60, fraction: -1.5, yes: true, no: false,
    "key with \u00fcmlaut": 1,
  };
  const s = { ...span("values"), attributes, error: "status \u00e9", startMs: 1234.567891, endMs: 1234.567892, parentSpanId: newSpanId(), traceState: "k=v" };
  e.add(s);
  await waitFor("received", () => c.spans.length === 1);
  const got = c.spans[0]!;
  expect(got.attributes).toEqual({ ...attributes, lone: "a\uFFFDb" }); // UTF-8 has no lone surrogates
  expect(got.resource).toMatchObject({ "deployment.environment": "prüfung", "shard.offset": -5, ratio: 0.25, "service.name": "switchyard" });
  expect([got.traceId, got.spanId, got.parentSpanId, got.traceState]).toEqual([s.traceId, s.spanId, s.parentSpanId, "k=v"]);
  expect([got.startNs, got.endNs]).toEqual([unixNano(s.startMs), unixNano(s.endMs)]);
  expect(got.endNs - got.startNs).toBe(1n);
  expect([got.status, got.statusMessage]).toEqual(["error", "status \u00e9"]);
});

test("the queue is bounded: beyond max_queue_size spans are dropped and counted, never queued", async () => {
  const c = collector();
  const e = exporter(c.url, { max_batch_size: 5, max_queue_size: 10, flush_interval: "1h" });
  const before = counters();
  const queueBefore = traceQueue.spans;
  for (let i = 0; i < 30; i++) e.add(span(`q${i}`)); // synchronously: nothing can be sent in between
  expect(e.queued).toBe(10);
  expect(traceQueue.spans - queueBefore).toBe(10);
  expect(delta(before).full).toBe(20);
  await e.flush();
  expect(c.spans.map((s) => s.name)).toEqual(Array.from({ length: 10 }, (_, i) => `q${i}`));
  expect(delta(before)).toEqual({ exported: 10, failed: 0, full: 20, shutdown: 0 });
  expect(traceQueue.spans).toBe(queueBefore);
});

test("429/503 are retried with backoff (Retry-After honoured up to max_backoff) and delivered once", async () => {
  const times: number[] = [];
  const c = collector((_req, n) => {
    times.push(performance.now());
    if (n === 1) return new Response(null, { status: 429, headers: { "retry-after": "1" } });
    if (n === 2) return new Response(null, { status: 503 });
    return new Response(null, { status: 200 });
  });
  const e = exporter(c.url, { flush_interval: "1ms", retry: { attempts: 3, initial_backoff: "40ms", max_backoff: "200ms" } });
  const before = counters();
  e.add(span("retried"));
  await waitFor("delivered", () => delta(before).exported === 1, 3000);
  expect(c.spans).toHaveLength(1);
  expect(c.state.requests).toBe(3);
  // Retry-After: 1 s, capped at max_backoff (200 ms); then the second backoff, 2 × 40 ms with equal jitter (40–80 ms).
  expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(190);
  expect(times[1]! - times[0]!).toBeLessThan(900);
  expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(35);
  expect(delta(before)).toEqual({ exported: 1, failed: 0, full: 0, shutdown: 0 });
});

test("retries are bounded: a collector always answering 503 gets `attempts` tries, then the batch counts as failed", async () => {
  const c = collector(() => new Response(null, { status: 503 }));
  const e = exporter(c.url, { flush_interval: "1ms", retry: { attempts: 3, initial_backoff: "5ms", max_backoff: "10ms" } });
  const before = counters();
  e.add(span("a"));
  e.add(span("b"));
  await waitFor("failed", () => delta(before).failed === 2);
  await Bun.sleep(50); // a negative check: no try after the last (backoffs here are 5-10 ms)
  expect(c.state.requests).toBe(3);
  expect(delta(before).exported).toBe(0);
});

test("400 (a refusal) is final: one try", async () => {
  const c = collector(() => new Response("bad", { status: 400 }));
  const e = exporter(c.url, { flush_interval: "1ms", retry: { attempts: 5, initial_backoff: "5ms" } });
  const before = counters();
  e.add(span("a"));
  await waitFor("failed", () => delta(before).failed === 1);
  await Bun.sleep(50); // a negative check: no second try
  expect(c.state.requests).toBe(1);
});

test("a collector that is down: tries are bounded, the spans count as failed, nothing throws", async () => {
  const c = collector();
  const url = c.url;
  c.stop(); // the port is closed now
  const e = exporter(url, { flush_interval: "1ms", retry: { attempts: 2, initial_backoff: "5ms", max_backoff: "10ms" } });
  const before = counters();
  e.add(span("lost"));
  await waitFor("failed", () => delta(before).failed === 1);
  expect(e.queued).toBe(0);
});

test("export_timeout ends an export the collector never answers", async () => {
  const c = collector(() => new Promise<Response>(() => {}));
  const e = exporter(c.url, { flush_interval: "1ms", export_timeout: "150ms", retry: { attempts: 1 } });
  const before = counters();
  const started = performance.now();
  e.add(span("hung"));
  await waitFor("failed", () => delta(before).failed === 1, 3000);
  expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  expect(performance.now() - started).toBeLessThan(1500);
});

test("flush sends every queued batch, and gives up at its deadline: what is left is dropped as `shutdown`", async () => {
  const ok = collector();
  const e = exporter(ok.url, { max_batch_size: 2, flush_interval: "1h" });
  for (let i = 0; i < 5; i++) e.add(span(`f${i}`));
  await e.flush();
  expect(ok.spans).toHaveLength(5);
  expect(ok.exports.map((x) => x.spans)).toEqual([2, 2, 1]);

  const hung = collector(() => new Promise<Response>(() => {}));
  const slow = exporter(hung.url, { max_batch_size: 2, flush_interval: "1h", export_timeout: "10s" });
  const before = counters();
  for (let i = 0; i < 5; i++) slow.add(span(`h${i}`));
  const started = performance.now();
  await slow.flush(200);
  expect(performance.now() - started).toBeLessThan(1000);
  // The batch in flight failed when cut; the other three spans were never sent.
  expect(delta(before)).toEqual({ exported: 0, failed: 2, full: 0, shutdown: 3 });
  expect(slow.queued).toBe(0);
});

test("hostile collector answers (a huge body, a redirect) are failures, not crashes", async () => {
  const c = collector((_req, n) => n === 1 ? new Response(new Uint8Array(8 * 1024 * 1024)) : new Response(null, { status: 307, headers: { location: "http://127.0.0.1:1/" } }));
  const e = exporter(c.url, { flush_interval: "1ms", retry: { attempts: 1 } });
  const before = counters();
  e.add(span("big"));
  await waitFor("first exported", () => delta(before).exported === 1);
  e.add(span("redirected"));
  await waitFor("second failed", () => delta(before).failed === 1);
  expect(c.state.requests).toBe(2);
});
