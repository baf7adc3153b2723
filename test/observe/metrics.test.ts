/** /metrics on the admin listener: valid Prometheus text (checked with a real parser), bounded labels, live counters. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import parsePrometheusTextFormat, { type MetricFamily } from "parse-prometheus-text-format";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: TestProxy;

beforeAll(async () => {
  up = startUpstream((req) => (new URL(req.url).pathname === "/fail" ? new Response("x", { status: 503 }) : new Response("ok")));
  proxy = await startProxy({
    admin: { address: "127.0.0.1", port: 0 },
    routes: [
      { name: "retrying", match: { path: { prefix: "/fail" } }, to: "up", retry: { attempts: 2 }, fallback: { status: 200, body: "fallback" } },
      { name: "metrics-api", to: "up" },
    ],
    clusters: { up: { endpoints: [up.origin], outlier: { consecutive_5xx: 100 }, breaker: { minimum_requests: 1000 } } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

async function scrapeText(): Promise<string> {
  const res = await fetch(`${proxy.running.admin!.url.origin}/metrics`);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

/** Counters and gauges through a JS parser (it mangles labelled histograms, so those are read from the text). */
async function scrape(): Promise<Map<string, MetricFamily>> {
  const families = parsePrometheusTextFormat(await scrapeText());
  return new Map(families.map((f) => [f.name, f]));
}

const sample = (f: MetricFamily | undefined, labels: Record<string, string>) =>
  f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));

test("promtool (Prometheus's own checker) accepts the exposition", async () => {
  await (await fetch(`${proxy.origin}/a/1?x=secret`)).text();
  await (await fetch(`${proxy.origin}/fail`)).text();
  const check = Bun.spawn(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(await scrapeText()), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(check.stdout).text(), new Response(check.stderr).text(), check.exited]);
  expect(`${out}${err}`).toBe("");
  expect(code).toBe(0);
});

test("the exposition parses, and every family is there", async () => {
  await (await fetch(`${proxy.origin}/a/1?x=secret`)).text();
  const families = await scrape();
  for (const name of [
    "switchyard_requests_total", "switchyard_request_duration_seconds", "switchyard_upstream_duration_seconds",
    "switchyard_request_bytes_total", "switchyard_response_bytes_total", "switchyard_config_version",
    "switchyard_requests_active", "switchyard_upstream_connections_active", "switchyard_endpoint_healthy", "switchyard_breaker_state",
  ]) expect(families.has(name)).toBe(true);
});

test("requests are counted by route, cluster, method class and status class; latency is a histogram", async () => {
  const before = Number(sample((await scrape()).get("switchyard_requests_total"), { route: "metrics-api", status_class: "2xx", method: "GET" })?.value ?? 0);
  for (let i = 0; i < 5; i++) await (await fetch(`${proxy.origin}/b/${i}`)).text();
  const families = await scrape();
  expect(Number(sample(families.get("switchyard_requests_total"), { route: "metrics-api", cluster: "up", method: "GET", status_class: "2xx" })!.value)).toBe(before + 5);
  const text = await scrapeText();
  const count = Number(/^switchyard_request_duration_seconds_count\{route="metrics-api"\} (\d+)$/m.exec(text)![1]);
  expect(count).toBeGreaterThanOrEqual(5);
  expect(text).toMatch(/^switchyard_request_duration_seconds_bucket\{route="metrics-api",le="\+Inf"\} \d+$/m);
  // No per-path label anywhere.
  for (const f of families.values()) for (const m of f.metrics) expect(Object.keys(m.labels ?? {})).not.toContain("path");
});

test("retries, fallbacks and errors are counted; health and breaker state are exported", async () => {
  await (await fetch(`${proxy.origin}/fail`)).text();
  const families = await scrape();
  expect(Number(sample(families.get("switchyard_retries_total"), { cluster: "up" })!.value)).toBeGreaterThanOrEqual(1);
  expect(Number(sample(families.get("switchyard_fallbacks_total"), { route: "retrying", kind: "static" })!.value)).toBeGreaterThanOrEqual(1);
  expect(Number(sample(families.get("switchyard_errors_total"), { route: "retrying", code: "upstream_unavailable" })!.value)).toBeGreaterThanOrEqual(1);
  expect(sample(families.get("switchyard_endpoint_healthy"), { cluster: "up" })!.value).toBe("1");
  expect(sample(families.get("switchyard_breaker_state"), { cluster: "up" })!.value).toBe("0");
  expect(sample(families.get("switchyard_config_version"), {})!.value).toBe("1");
});

test("every metric the Grafana dashboard queries is exported", async () => {
  const dashboard = JSON.parse(await Bun.file(`${import.meta.dir}/../../src/observe/grafana-dashboard.json`).text()) as { panels: { targets: { expr: string }[] }[] };
  const queried = new Set<string>();
  for (const p of dashboard.panels) for (const t of p.targets) for (const m of t.expr.matchAll(/\bswitchyard_[a-z_]+/g)) queried.add(m[0].replace(/_(bucket|sum|count)$/, ""));
  expect(queried.size).toBeGreaterThan(10);
  // Families present in the exposition, whether or not they have samples yet.
  const exported = new Set([...(await scrapeText()).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  for (const name of queried) expect(exported).toContain(name);
});

test("merging workers' expositions adds amounts and keeps states", async () => {
  const { mergeExpositions } = await import("../../src/observe/merge.ts");
  const worker = (requests: number, version: number) =>
    `# HELP switchyard_requests_total r\n# TYPE switchyard_requests_total counter\nswitchyard_requests_total{route="a"} ${requests}\n` +
    `# HELP switchyard_config_version v\n# TYPE switchyard_config_version gauge\nswitchyard_config_version ${version}\n`;
  const merged = mergeExpositions([worker(3, 2), worker(4, 2)]);
  expect(merged).toContain('switchyard_requests_total{route="a"} 7');
  expect(merged).toContain("switchyard_config_version 2");
  expect(merged.match(/# TYPE switchyard_requests_total counter/g)).toHaveLength(1);
});

test("OpenMetrics when the scraper asks for it: counter families without _total, samples with it, # EOF at the end", async () => {
  const res = await fetch(`${proxy.running.admin!.url.origin}/metrics`, { headers: { accept: "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5" } });
  expect(res.headers.get("content-type")).toStartWith("application/openmetrics-text; version=1.0.0");
  const text = await res.text();
  expect(text).toContain("# TYPE switchyard_requests counter");
  expect(text).toMatch(/^switchyard_requests_total\{/m);
  expect(text).toContain("# TYPE switchyard_request_duration_seconds histogram");
  expect(text.endsWith("# EOF\n")).toBe(true);
});
