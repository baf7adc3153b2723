/**
 * The status page's arithmetic, on expositions rendered by the real registry classes and a runtime
 * built from a real config: readings, windows, quantiles, charts and the judgements.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { validateLiteral } from "../../src/config/load.ts";
import { LATENCY_BUCKETS } from "../../src/observe/metrics.ts";
import { Counter, Histogram, Registry } from "../../src/observe/registry.ts";
import { buildStatus } from "../../src/runtime/status-data.ts";
import { countsBetween, quantileMs, ReadingRing, readExposition, readingBefore } from "../../src/observe/status-history.ts";
import { judgeEndpoint } from "../../src/observe/status-judge.ts";
import { buildRuntime } from "../../src/runtime/build.ts";

/** A registry with the families the page reads, as metrics.ts declares them. */
function families() {
  const registry = new Registry();
  return {
    registry,
    requests: registry.add(new Counter("switchyard_requests_total", "", ["route", "cluster", "method", "status_class"])),
    failures: registry.add(new Counter("switchyard_proxy_failures_total", "", ["route", "cluster"])),
    errors: registry.add(new Counter("switchyard_errors_total", "", ["route", "cluster", "code"])),
    duration: registry.add(new Histogram("switchyard_request_duration_seconds", "", ["route"], LATENCY_BUCKETS)),
    tries: registry.add(new Counter("switchyard_upstream_tries_total", "", ["cluster", "endpoint", "result"])),
  };
}

describe("readings", () => {
  test("an exposition is read into per-route and per-cluster counts, tries by endpoint, errors by code", () => {
    const m = families();
    m.requests.inc(["api", "a", "GET", "2xx"], 7);
    m.requests.inc(["api", "a", "POST", "5xx"], 3);
    m.requests.inc(["api", "b \"quoted\"", "GET", "2xx"], 1);
    m.failures.inc(["api", "a"], 2);
    m.errors.inc(["api", "a", "upstream_reset"], 2);
    for (const v of [0.003, 0.003, 0.2]) m.duration.observe(["api"], v);
    m.tries.inc(["a", "10.0.0.1:80", "error"], 4);
    m.tries.inc(["a", "10.0.0.1:80", "ok"], 6);
    const r = readExposition(m.registry.render(), 1000);
    const api = r.routes.get("api")!;
    expect(api.requests).toBe(11);
    expect(api.classes).toEqual([0, 0, 8, 0, 0, 3]);
    expect(api.failures).toBe(2);
    expect(api.errors.get("upstream_reset")).toBe(2);
    expect(api.latency.at(-1)).toBe(3);
    expect(r.clusters.get("b \"quoted\"")!.requests).toBe(1); // label escapes undone
    expect(r.routeClusters.get("api\u0000a")).toBe(10);
    expect(r.tries.get("a\u000010.0.0.1:80")).toEqual({ ok: 6, status5xx: 0, error: 4 });
  });

  test("a window is the difference of two readings; p50/p99 are interpolated in their buckets as histogram_quantile does", () => {
    const m = families();
    for (let i = 0; i < 50; i++) m.duration.observe(["r"], 0.004); // (2.5 ms, 5 ms]
    const before = readExposition(m.registry.render(), 0);
    for (let i = 0; i < 98; i++) m.duration.observe(["r"], 0.02); // (10 ms, 25 ms]
    for (let i = 0; i < 2; i++) m.duration.observe(["r"], 0.3); // (250 ms, 500 ms]
    const d = countsBetween(readExposition(m.registry.render(), 10_000).routes.get("r"), before.routes.get("r"));
    expect(d.latency.at(-1)).toBe(100);
    expect(quantileMs(d.latency, 0.5)).toBeCloseTo(10 + 15 * (50 / 98), 5);
    expect(quantileMs(d.latency, 0.99)).toBeCloseTo(250 + 250 * 0.5, 5);
    expect(quantileMs(countsBetween(undefined, undefined).latency, 0.99)).toBeNull();
  });

  test("the ring keeps its bound, and finds the reading a window starts at", async () => {
    let t = 0;
    const ring = new ReadingRing(() => readExposition("", (t += 10_000)), 5);
    for (let i = 0; i < 8; i++) await ring.take();
    expect(ring.all().map((r) => r.at)).toEqual([40_000, 50_000, 60_000, 70_000, 80_000]);
    expect(readingBefore(ring.all(), 85_000, 30_000)!.at).toBe(50_000);
    expect(readingBefore(ring.all(), 85_000, 3_600_000)!.at).toBe(40_000); // older than all: the oldest
    expect(readingBefore([], 85_000, 30_000)).toBeUndefined();
  });
});

describe("judgements", () => {
  test("an endpoint is failing by its tries alone: no health check or outlier detection needed", () => {
    expect(judgeEndpoint({ tries: 3, failed: 3, ejectedForMs: 0, checked: false, checkPassing: true })).toEqual({ state: "failing", label: "failing", reasons: ["3 of 3 tries failed in the last minute"] });
    expect(judgeEndpoint({ tries: 2, failed: 2, ejectedForMs: 0, checked: false, checkPassing: true }).state).toBe("degraded"); // too few to call it
    expect(judgeEndpoint({ tries: 100, failed: 3, ejectedForMs: 0, checked: false, checkPassing: true }).state).toBe("ok");
    expect(judgeEndpoint({ tries: 100, failed: 10, ejectedForMs: 0, checked: false, checkPassing: true })).toMatchObject({ state: "degraded", label: "errors" });
    expect(judgeEndpoint({ tries: 0, failed: 0, ejectedForMs: 0, checked: false, checkPassing: true })).toMatchObject({ state: "idle", label: "no traffic" });
    expect(judgeEndpoint({ tries: 0, failed: 0, ejectedForMs: 0, checked: true, checkPassing: true })).toMatchObject({ state: "ok", label: "healthy" });
    expect(judgeEndpoint({ tries: 0, failed: 0, ejectedForMs: 0, checked: true, checkPassing: false })).toMatchObject({ state: "failing", label: "unhealthy" });
    expect(judgeEndpoint({ tries: 10, failed: 0, ejectedForMs: 12_300, checked: false, checkPassing: true })).toMatchObject({ state: "failing", label: "ejected", reasons: ["ejected by outlier detection for 13 s more"] });
  });
});

describe("the document", () => {
  const runtime = buildRuntime(validateLiteral("(test)", {
    listeners: [{ port: 0 }],
    routes: [{ name: "api", to: "a", failover: ["b"] }],
    clusters: { a: { endpoints: ["http://10.0.0.1:80"] }, b: { endpoints: ["http://10.0.0.2:80"] } },
  }), 1);
  afterAll(() => runtime.dispose());

  test("charts have one point per interval plus the one under way; the window starts at the newest reading a minute old", () => {
    const m = families();
    const readings = [];
    for (let i = 0; i <= 9; i++) {
      readings.push(readExposition(m.registry.render(), i * 10_000));
      m.requests.inc(["api", "a", "GET", i < 5 ? "2xx" : "5xx"], 20); // 2 req/s; failing from the 6th interval on
      if (i >= 5) m.errors.inc(["api", "a", "upstream_connect_refused"], 20);
    }
    const live = readExposition(m.registry.render(), 95_000);
    const s = buildStatus({ runtime, versionInfo: undefined, changes: [], live, readings, failures: [], workers: 1 });
    const api = s.routes[0]!;
    expect(api.chart.rate).toEqual([2, 2, 2, 2, 2, 2, 2, 2, 2, 4]); // the last: 20 requests in 5 s
    expect(api.chart.errors).toEqual([0, 0, 0, 0, 0, 2, 2, 2, 2, 4]);
    expect(s.window_s).toBe(65); // from the reading at 30 s
    expect(api.traffic).toMatchObject({ requests: 140, error_rate: 0.7143, top_error: { code: "upstream_connect_refused", count: 100 } });
    expect(api.state).toBe("failing");
    expect(api.chain.map((l) => [l.cluster, l.role, l.serving])).toEqual([["a", "primary", true], ["b", "failover", false]]);
  });

  test("an interval under way shorter than 2 s is not charted (a rate over a blink says little)", () => {
    const m = families();
    const readings = [readExposition(m.registry.render(), 0), readExposition(m.registry.render(), 10_000)];
    const s = buildStatus({ runtime, versionInfo: undefined, changes: [], live: readExposition(m.registry.render(), 10_500), readings, failures: [], workers: 1 });
    expect(s.routes[0]!.chart.at).toEqual([10_000]);
  });
});
