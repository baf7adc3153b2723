/** Traffic shaping: weighted clusters (canary), header/cookie overrides, priority failover. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { validateConfig } from "../../src/config/load.ts";
import { buildRuntime } from "../../src/runtime/build.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const clusters = { stable: { endpoints: ["127.0.0.1:1"] }, canary: { endpoints: ["127.0.0.1:2"] } };

describe("choice", () => {
  test("weights 95/5 give the canary 5% ± 1.5% over 10,000 requests", () => {
    const config = validateConfig("t", {
      listeners: [{ port: 0 }],
      routes: [{ weighted_clusters: [{ cluster: "stable", weight: 95 }, { cluster: "canary", weight: 5 }] }],
      clusters,
    });
    const runtime = buildRuntime(config, 1);
    const choose = runtime.routes[0]!.chooseCluster!;
    let canary = 0;
    for (let i = 0; i < 10_000; i++) if (choose(new Headers()).name === "canary") canary++;
    expect(canary / 10_000).toBeGreaterThan(0.035);
    expect(canary / 10_000).toBeLessThan(0.065);
    runtime.dispose();
  });

  test("config errors: both to and weighted_clusters, an unknown cluster anywhere, an override without header or cookie", () => {
    const problems = (route: Record<string, unknown>) => {
      try {
        validateConfig("t", { listeners: [{ port: 0 }], routes: [route], clusters });
        return [];
      } catch (e) {
        return (e as { problems: string[] }).problems;
      }
    };
    expect(problems({ to: "stable", weighted_clusters: [{ cluster: "canary", weight: 1 }] })).toContain("routes[0].to: give exactly one of to, weighted_clusters, compose or module");
    expect(problems({ weighted_clusters: [{ cluster: "nope", weight: 1 }] })[0]).toStartWith('routes[0].weighted_clusters[0].cluster: unknown cluster "nope"');
    expect(problems({ to: "stable", failover: ["gone"] })[0]).toStartWith('routes[0].failover[0]: unknown cluster "gone"');
    expect(problems({ to: "stable", override: { value: "1", cluster: "canary" } })[0]).toContain("give exactly one of header or cookie");
  });
});

describe("through the proxy", () => {
  let stable: Upstream;
  let canary: Upstream;
  let backup: Upstream;
  let primary: Upstream;
  let proxy: TestProxy;
  const primaryHealthy = { value: true };

  beforeAll(async () => {
    stable = startUpstream(() => new Response("stable"));
    canary = startUpstream(() => new Response("canary"));
    backup = startUpstream(() => new Response("backup"));
    primary = startUpstream((req) =>
      new URL(req.url).pathname === "/health" ? new Response(null, { status: primaryHealthy.value ? 200 : 500 }) : new Response("primary"),
    );
    proxy = await startProxy({
      routes: [
        {
          name: "canary", match: { path: { prefix: "/app" } },
          weighted_clusters: [{ cluster: "stable", weight: 100 }, { cluster: "canary", weight: 0 }],
          override: { header: "x-canary", value: "1", cluster: "canary" },
        },
        { name: "cookie", match: { path: { prefix: "/c" } }, to: "stable", override: { cookie: "beta", cluster: "canary" } },
        { name: "failover", match: { path: { prefix: "/f" } }, to: "primary", failover: ["backup"] },
      ],
      clusters: {
        stable: { endpoints: [stable.origin] },
        canary: { endpoints: [canary.origin] },
        backup: { endpoints: [backup.origin] },
        primary: { endpoints: [primary.origin], health_check: { path: "/health", interval: "50ms", jitter: "0", unhealthy_threshold: 1, healthy_threshold: 1 } },
      },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    for (const u of [stable, canary, backup, primary]) u.stop(true);
  });

  const text = async (path: string, headers: Record<string, string> = {}) => (await fetch(proxy.origin + path, { headers })).text();

  test("x-canary: 1 goes to the canary whatever the weights; other values do not", async () => {
    expect(await text("/app")).toBe("stable");
    expect(await text("/app", { "x-canary": "1" })).toBe("canary");
    expect(await text("/app", { "x-canary": "0" })).toBe("stable");
  });

  test("a cookie override", async () => {
    expect(await text("/c", { cookie: "a=1; beta=yes" })).toBe("canary");
    expect(await text("/c", { cookie: "a=1" })).toBe("stable");
  });

  test("failover: when the primary cluster has no healthy endpoint, the secondary serves; then back", async () => {
    expect(await text("/f")).toBe("primary");
    primaryHealthy.value = false;
    await waitFor("failover", async () => (await text("/f")) === "backup", 3000);
    primaryHealthy.value = true;
    await waitFor("back to primary", async () => (await text("/f")) === "primary", 3000);
  });
});
