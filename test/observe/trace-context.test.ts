/** W3C Trace Context parsing, the sampling decision, OTLP time conversion and the tracing config. */
import { describe, expect, test } from "bun:test";
import { ConfigSchema } from "../../src/config/schema.ts";
import { unixNano } from "../../src/observe/otlp.ts";
import { SpanExporter } from "../../src/observe/span-exporter.ts";
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, ratioSampled } from "../../src/observe/trace-context.ts";
import { Tracer } from "../../src/observe/tracing.ts";
import { TracingSchema } from "../../src/observe/tracing-schema.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

describe("traceparent", () => {
  test("valid forms", () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: 1, canonical: true });
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.flags).toBe(0);
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-03`)?.flags).toBe(3);
    // A future version may carry more fields; it is read as version 00 (§4.3).
    expect(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-holds`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: 1, canonical: false });
    expect(parseTraceparent(` 00-${TRACE}-${PARENT}-01 `)?.canonical).toBe(false);
  });

  test("invalid forms are refused (a new trace starts instead)", () => {
    for (const bad of [
      null, "", "garbage", `00-${TRACE}-${PARENT}`, `00-${TRACE}-${PARENT}-1`, `00-${TRACE.toUpperCase()}-${PARENT}-01`,
      `ff-${TRACE}-${PARENT}-01`, `00-${"0".repeat(32)}-${PARENT}-01`, `00-${TRACE}-${"0".repeat(16)}-01`,
      `00-${TRACE}-${PARENT}-01-extra`, `00-${TRACE}0-${PARENT}-01`, `0-${TRACE}-${PARENT}-01`, `00_${TRACE}_${PARENT}_01`,
      `00-${TRACE}-${PARENT}-01`.repeat(200), `00-${TRACE}-${PARENT}-0g`, `00-${TRACE}-${PARENT}-01\u0000`,
    ]) expect(parseTraceparent(bad)).toBeUndefined();
  });

  test("format and ids: lowercase hex of the right length, never all zeros, distinct", () => {
    expect(formatTraceparent(TRACE, PARENT, 1)).toBe(`00-${TRACE}-${PARENT}-01`);
    expect(formatTraceparent(TRACE, PARENT, 0x83)).toBe(`00-${TRACE}-${PARENT}-83`);
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      expect(t).toMatch(/^[0-9a-f]{32}$/);
      expect(s).toMatch(/^[0-9a-f]{16}$/);
      ids.add(t).add(s);
    }
    expect(ids.size).toBe(2000);
  });
});

describe("sampling decision", () => {
  test("ratio on the trace id: deterministic, 0 and 1 absolute, monotonic in the ratio", () => {
    expect(ratioSampled(TRACE, 1)).toBe(true);
    expect(ratioSampled(TRACE, 0)).toBe(false);
    expect(ratioSampled(`${"f".repeat(19)}0000000000000`, 1e-9)).toBe(true);
    expect(ratioSampled("f".repeat(32), 0.999)).toBe(false);
    let sampled = 0;
    for (let i = 0; i < 2000; i++) {
      const id = newTraceId();
      expect(ratioSampled(id, 0.2)).toBe(ratioSampled(id, 0.2));
      if (ratioSampled(id, 0.2)) {
        sampled++;
        expect(ratioSampled(id, 0.5)).toBe(true);
      }
    }
    // Binomial(2000, 0.2): mean 400, sd ≈ 17.9; ±5 sd.
    expect(sampled).toBeGreaterThan(310);
    expect(sampled).toBeLessThan(490);
  });

  const tracer = (config: Record<string, unknown>) => {
    const parsed = TracingSchema.parse(config);
    return new Tracer(parsed, new SpanExporter(parsed));
  };
  const begin = (t: Tracer, traceparent?: string) => t.begin(new Headers(traceparent ? { traceparent, tracestate: "a=1" } : {}));

  test("parent_based follows the caller's flag whatever the ratio; other flag bits pass through", () => {
    const never = tracer({ ratio: 0 });
    const sampled = begin(never, `00-${TRACE}-${PARENT}-03`);
    expect(sampled.span).toBeDefined();
    expect(sampled.span!.parentId).toBe(PARENT);
    expect(sampled.span!.traceState).toBe("a=1");
    expect(sampled.traceparent).toBe(`00-${TRACE}-${sampled.span!.spanId}-03`);
    const always = tracer({ ratio: 1 });
    const unsampled = begin(always, `00-${TRACE}-${PARENT}-02`);
    expect(unsampled.span).toBeUndefined();
    expect(unsampled.traceparent).toBe(`00-${TRACE}-${PARENT}-02`);
    // A future version goes on in version 00 form.
    expect(begin(always, `01-${TRACE}-${PARENT}-00-more`).traceparent).toBe(`00-${TRACE}-${PARENT}-00`);
    // No parent: the ratio decides, and the flag says so.
    expect(begin(never).span).toBeUndefined();
    expect(begin(never).traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(begin(always).traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  test("sampler ratio overrides the caller's flag both ways, and the flag sent on says what was decided", () => {
    const never = begin(tracer({ sampler: "ratio", ratio: 0 }), `00-${TRACE}-${PARENT}-01`);
    expect(never.span).toBeUndefined();
    expect(never.traceparent).toBe(`00-${TRACE}-${PARENT}-00`);
    const always = begin(tracer({ sampler: "ratio", ratio: 1 }), `00-${TRACE}-${PARENT}-00`);
    expect(always.span).toBeDefined();
    expect(always.traceparent).toBe(`00-${TRACE}-${always.span!.spanId}-01`);
  });

  test("an oversized tracestate is forwarded by the proxy but left off the spans", () => {
    const t = tracer({});
    const started = t.begin(new Headers({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: `a=${"x".repeat(600)}` }));
    expect(started.span!.traceState).toBe("");
  });
});

test("unixNano: monotonic time to Unix ns, durations exact to the nanosecond (epoch ms × 1e6 would pass 2^53)", () => {
  expect(unixNano(1234.567891) - unixNano(0)).toBe(1_234_567_891n);
  expect(unixNano(0.000001) - unixNano(0)).toBe(1n);
  const now = unixNano(performance.now());
  const wall = BigInt(Date.now()) * 1_000_000n;
  expect(now - wall < 5_000_000n && wall - now < 5_000_000n).toBe(true);
});

describe("config", () => {
  const base = { listeners: [{ port: 0 }] };
  const problems = (tracing: unknown) => {
    const r = ConfigSchema.safeParse({ ...base, telemetry: { tracing } });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };

  test("defaults", () => {
    const config = ConfigSchema.parse({ ...base, telemetry: { tracing: {} } });
    expect(config.telemetry.tracing).toMatchObject({
      enabled: true, endpoint: "http://127.0.0.1:4318/v1/traces", sampler: "parent_based", ratio: 1, service_name: "switchyard",
      max_batch_size: 512, max_queue_size: 2048, flush_interval: 5000, export_timeout: 10_000, retry: { attempts: 3, initial_backoff: 500, max_backoff: 5000 },
    });
    expect(ConfigSchema.parse(base).telemetry.tracing).toBeUndefined();
  });

  test("the admin API never shows the export headers' values, whatever their names", async () => {
    const { redact } = await import("../../routes/admin-api.ts");
    const config = ConfigSchema.parse({ ...base, telemetry: { tracing: { headers: { "x-honeycomb-team": "hc-secret", authorization: "Bearer t" }, service_name: "edge" } } });
    const shown = redact(config) as typeof config;
    expect(shown.telemetry.tracing!.headers).toEqual({ "x-honeycomb-team": "[redacted]", authorization: "[redacted]" });
    expect(shown.telemetry.tracing!.service_name).toBe("edge");
    expect(shown.telemetry.tracing!.endpoint).toBe("http://127.0.0.1:4318/v1/traces");
  });

  test("bad values name their path", () => {
    expect(problems({ ratio: 1.5 })).toEqual(["telemetry.tracing.ratio: Too big: expected number to be <=1"]);
    expect(problems({ endpoint: "ftp://collector/v1/traces" })).toEqual(["telemetry.tracing.endpoint: must be an http:// or https:// URL (credentials go in `headers`)"]);
    expect(problems({ endpoint: "http://user:pw@collector/v1/traces" })).toEqual(["telemetry.tracing.endpoint: must be an http:// or https:// URL (credentials go in `headers`)"]);
    expect(problems({ sampler: "always_on" })[0]).toStartWith("telemetry.tracing.sampler: ");
    expect(problems({ max_batch_size: 100, max_queue_size: 10 })).toEqual(["telemetry.tracing.max_batch_size: max_batch_size must not exceed max_queue_size"]);
    expect(problems({ headers: { "bad header": "x" } })[0]).toStartWith("telemetry.tracing.headers.bad header: ");
    expect(problems({ flush_interval: "0" })).toEqual(["telemetry.tracing.flush_interval: must be more than 0"]);
    expect(problems({ retry: { attempts: 0 } })[0]).toStartWith("telemetry.tracing.retry.attempts: ");
    expect(problems({ colour: "blue" })[0]).toContain("colour");
    expect(ConfigSchema.safeParse({ ...base, telemetry: { metrics: {} } }).success).toBe(false);
  });
});
