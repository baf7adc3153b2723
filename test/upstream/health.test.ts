/** Active health checks, outlier ejection and panic mode: against real upstreams that fail and come back. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { recordCheck } from "../../src/upstream/health/active.ts";
import { OutlierDetector } from "../../src/upstream/health/outlier.ts";
import { HealthCheckSchema, OutlierSchema } from "../../src/upstream/health/schema.ts";
import { freshHealth } from "../../src/upstream/health/state.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

describe("active check state", () => {
  test("unhealthy after unhealthy_threshold failures in a row, healthy again after healthy_threshold passes", () => {
    const config = HealthCheckSchema.parse({ path: "/h", unhealthy_threshold: 2, healthy_threshold: 3 });
    const h = freshHealth();
    expect(recordCheck(h, config, false)).toBe(false);
    expect(recordCheck(h, config, true)).toBe(false); // a pass resets the failure count
    expect(recordCheck(h, config, false)).toBe(false);
    expect(recordCheck(h, config, false)).toBe(true);
    expect(h.activeHealthy).toBe(false);
    recordCheck(h, config, true);
    recordCheck(h, config, true);
    expect(h.activeHealthy).toBe(false);
    expect(recordCheck(h, config, true)).toBe(true);
    expect(h.activeHealthy).toBe(true);
  });
});

describe("outlier detection", () => {
  function detector(raw: Record<string, unknown>, n = 10) {
    let now = 1000;
    const endpoints = Array.from({ length: n }, () => ({ health: freshHealth() }));
    const d = new OutlierDetector(endpoints, OutlierSchema.parse({ interval: "1h", ...raw }), () => {}, () => now);
    return { d, endpoints, advance: (ms: number) => (now += ms), now: () => now };
  }

  test("consecutive 5xx eject; a success in between resets the count; ejection time grows", () => {
    const { d, endpoints, advance, now } = detector({ consecutive_5xx: 3, base_ejection_time: "10s" });
    const e = endpoints[0]!;
    d.report(e, { status: 500 });
    d.report(e, { status: 500 });
    d.report(e, { status: 200 });
    d.report(e, { status: 500 });
    d.report(e, { status: 500 });
    expect(e.health.ejectedUntil).toBe(0);
    d.report(e, { status: 503 });
    expect(e.health.ejectedUntil).toBe(now() + 10_000);
    advance(10_001);
    d.review();
    expect(e.health.ejectedUntil).toBe(0);
    for (let i = 0; i < 3; i++) d.report(e, { gatewayFailure: true });
    expect(e.health.ejectedUntil).toBe(now() + 20_000); // second ejection: twice as long
    d.stop();
  });

  test("consecutive gateway failures count connect errors, not 500s", () => {
    const { d, endpoints } = detector({ consecutive_5xx: 0, consecutive_gateway_failure: 2 });
    const e = endpoints[0]!;
    d.report(e, { status: 500 });
    d.report(e, { status: 500 });
    expect(e.health.ejectedUntil).toBe(0);
    d.report(e, { gatewayFailure: true });
    d.report(e, { status: 502 });
    expect(e.health.ejectedUntil).toBeGreaterThan(0);
    d.stop();
  });

  test("never more than max_ejection_percent of the cluster, but one always may be", () => {
    const { d, endpoints } = detector({ consecutive_5xx: 1, max_ejection_percent: 20 });
    for (const e of endpoints) d.report(e, { status: 500 });
    expect(endpoints.filter((e) => e.health.ejectedUntil > 0)).toHaveLength(2);
    const lone = detector({ consecutive_5xx: 1, max_ejection_percent: 5 }, 3);
    for (const e of lone.endpoints) lone.d.report(e, { status: 500 });
    expect(lone.endpoints.filter((e) => e.health.ejectedUntil > 0)).toHaveLength(1);
    d.stop();
    lone.d.stop();
  });

  test("a success rate below the threshold over a window ejects, given enough requests", () => {
    const { d, endpoints } = detector({ consecutive_5xx: 0, consecutive_gateway_failure: 0, success_rate: { minimum_requests: 10, threshold: 80 } });
    const [bad, few] = endpoints;
    for (let i = 0; i < 10; i++) d.report(bad!, { status: i < 3 ? 500 : 200 }); // 70%
    for (let i = 0; i < 5; i++) d.report(few!, { status: 500 }); // too few requests to judge
    d.review();
    expect(bad!.health.ejectedUntil).toBeGreaterThan(0);
    expect(few!.health.ejectedUntil).toBe(0);
    d.stop();
  });
});

describe("through the proxy", () => {
  const state = { aHealthy: true, bFailing: false };
  let a: Upstream;
  let b: Upstream;
  let c: Upstream;
  let proxy: TestProxy;
  const base = () => ({
    routes: [
      { name: "checked", match: { path: { prefix: "/checked" } }, to: "checked" },
      { name: "outlier", match: { path: { prefix: "/outlier" } }, to: "outlier" },
    ],
    clusters: {
      checked: {
        endpoints: [a.origin, b.origin, c.origin],
        health_check: { path: "/health", interval: "50ms", jitter: "0", timeout: "200ms", unhealthy_threshold: 2, healthy_threshold: 2 },
        panic_threshold: 0,
      },
      outlier: {
        endpoints: [a.origin, b.origin, c.origin],
        outlier: { consecutive_5xx: 3, base_ejection_time: "400ms", max_ejection_percent: 50 },
        panic_threshold: 0,
      },
    },
  });

  beforeAll(async () => {
    const make = (name: string) =>
      startUpstream((req) => {
        const path = new URL(req.url).pathname;
        if (path === "/health") return new Response(name === "a" && !state.aHealthy ? "sick" : "ok", { status: name === "a" && !state.aHealthy ? 500 : 200 });
        if (name === "b" && state.bFailing) return new Response("failing", { status: 503 });
        return new Response(name);
      });
    a = make("a");
    b = make("b");
    c = make("c");
    proxy = await startProxy(base());
  });
  afterAll(async () => {
    await proxy.stop();
    for (const u of [a, b, c]) u.stop(true);
  });

  async function spread(path: string, n = 30): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const res = await fetch(proxy.origin + path);
      const key = res.status === 200 ? await res.text() : String(res.status);
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  const cluster = (name: string) => proxy.running.state.runtime.current.clusters.get(name)!;
  const availableNames = (name: string) => cluster(name).available().map((e) => e.origin);

  test("an endpoint failing its health checks leaves the pool and returns when it passes again", async () => {
    state.aHealthy = false;
    await waitFor("a taken out", () => !availableNames("checked").includes(a.origin), 3000);
    const seen = await spread("/checked");
    expect(seen.a).toBeUndefined();
    expect((seen.b ?? 0) + (seen.c ?? 0)).toBe(30);
    state.aHealthy = true;
    await waitFor("a back", () => availableNames("checked").includes(a.origin), 3000);
    expect((await spread("/checked")).a).toBeGreaterThan(0);
  });

  test("health survives a reload for endpoints that stay", async () => {
    state.aHealthy = false;
    await waitFor("a taken out", () => !availableNames("checked").includes(a.origin), 3000);
    await proxy.running.reload();
    expect(availableNames("checked")).not.toContain(a.origin);
    state.aHealthy = true;
    await waitFor("a back", () => availableNames("checked").includes(a.origin), 3000);
  });

  test("an endpoint answering 503 is ejected by outlier detection, then returns after the ejection time", async () => {
    state.bFailing = true;
    const first = await spread("/outlier", 30);
    expect(first["503"]).toBe(3); // exactly the three that tripped the detector
    expect(availableNames("outlier")).not.toContain(b.origin);
    // Ejected for base_ejection_time (400 ms) from when it tripped, a moment ago.
    const ejectedFor = cluster("outlier").endpoints.find((e) => e.origin === b.origin)!.health.ejectedUntil - performance.now();
    expect(ejectedFor).toBeGreaterThan(0);
    expect(ejectedFor).toBeLessThanOrEqual(400);
    state.bFailing = false;
    await waitFor("b back after the 400 ms ejection", () => availableNames("outlier").includes(b.origin), 1500);
    expect((await spread("/outlier")).b).toBeGreaterThan(0);
  });

  test("panic: with too few healthy endpoints, traffic goes to all; with none available and no panic, 503", async () => {
    const sick = ["s1", "s2"].map((name) => startUpstream((req) => (new URL(req.url).pathname === "/health" ? new Response("no", { status: 500 }) : new Response(name))));
    const check = { path: "/health", interval: "50ms", jitter: "0", unhealthy_threshold: 1 };
    const p = await startProxy({
      routes: [{ match: { path: { prefix: "/panic" } }, to: "panicky" }, { match: { path: { prefix: "/strict" } }, to: "strict" }],
      clusters: {
        panicky: { endpoints: [sick[0]!.origin, sick[1]!.origin, c.origin], health_check: check }, // 1 of 3 healthy < 50%
        strict: { endpoints: [sick[0]!.origin], health_check: check, panic_threshold: 0 },
      },
    });
    try {
      const rt = () => p.running.state.runtime.current;
      await waitFor("checks ran", () => rt().clusters.get("strict")!.available().length === 0, 3000);
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) seen.add(await (await fetch(`${p.origin}/panic`)).text());
      expect(seen).toEqual(new Set(["s1", "s2", "c"]));
      const res = await fetch(`${p.origin}/strict`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toBe("no_healthy_endpoint");
    } finally {
      await p.stop();
      for (const u of sick) u.stop(true);
    }
  });
});
