/**
 * The status page against a real proxy: a healthy route, a route whose only endpoint refuses every
 * connection (a port with nothing listening) and a route with a failover chain. The JSON is
 * checked, then the page is rendered by a real headless Chromium once its script has drawn live
 * data; its DOM is checked and screenshots are kept (healthy, then the outage) in
 * $TMPDIR/switchyard-status-page/.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StatusJson } from "../../src/runtime/status-data.ts";
import { openPage } from "../helpers/chromium.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "status-page-token-0123456789";
export const SCREENSHOTS = join(tmpdir(), "switchyard-status-page");
let shop: Upstream;
let main: Upstream;
let backup: Upstream;
let mainHealthy = true;
let proxy: TestProxy;
let admin = "";
const deadPort = freePort(); // nothing listens there: every connection is refused

const config: Parameters<typeof startProxy>[0] = {
  admin: { address: "127.0.0.1", port: 0, token: TOKEN },
  routes: [
    { name: "storefront", match: { path: { prefix: "/shop" } }, to: "shop" },
    { name: "checkout", match: { path: { prefix: "/pay" } }, to: "payment-gw" },
    { name: "catalog", match: { path: { prefix: "/catalog" } }, to: "catalog-main", failover: ["catalog-backup"] },
  ],
  clusters: {
    shop: { endpoints: [0, 1].map(() => "") as string[], breaker: {} },
    "payment-gw": { endpoints: [`http://127.0.0.1:${deadPort}`] },
    "catalog-main": { endpoints: [""], health_check: { path: "/health", interval: "50ms", jitter: "0", unhealthy_threshold: 1, healthy_threshold: 1 }, panic_threshold: 0 },
    "catalog-backup": { endpoints: [""] },
  },
};

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  shop = startUpstream(() => new Response("ok"));
  main = startUpstream((req) => (new URL(req.url).pathname === "/health" ? new Response(null, { status: mainHealthy ? 200 : 500 }) : new Response("main")));
  backup = startUpstream(() => new Response("backup"));
  config.clusters!.shop!.endpoints = [shop.origin];
  config.clusters!["catalog-main"]!.endpoints = [main.origin];
  config.clusters!["catalog-backup"]!.endpoints = [backup.origin];
  proxy = await startProxy(config);
  admin = proxy.running.admin!.url.origin;
});
afterAll(async () => {
  await proxy.stop();
  for (const u of [shop, main, backup]) u.stop(true);
});

async function status(): Promise<StatusJson> {
  const res = await fetch(`${admin}/status.json`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as StatusJson;
}

async function send(path: string, n: number, concurrency = 50): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = Array.from({ length: Math.min(concurrency, n - i) }, async (_, j) => {
      const res = await fetch(`${proxy.origin}${path}/${i + j}`);
      await res.arrayBuffer();
      return res.status;
    });
    statuses.push(...(await Promise.all(batch)));
  }
  return statuses;
}

type Page = Awaited<ReturnType<typeof openPage>>;

/** What the rendered DOM has at `selector`: its class list, data-state and text ("" classes and null state when absent). */
async function element(page: Page, selector: string): Promise<{ found: boolean; classes: string[]; state: string | null; text: string }> {
  return page.evaluate(`(() => {
    const e = document.querySelector(${JSON.stringify(selector)});
    return { found: e !== null, classes: e ? [...e.classList] : [], state: e ? e.getAttribute("data-state") : null, text: e ? e.textContent : "" };
  })()`);
}

/** Opens the page, waits until its script has drawn data in `state`, lets `check` look at the DOM, keeps a screenshot. */
async function render(file: string, state: string, check: (page: Page) => Promise<void>): Promise<string> {
  const page = await openPage(`${admin}/status?token=${TOKEN}`);
  try {
    await page.waitFor(`Number(document.documentElement.dataset.refreshes) >= 1 && document.documentElement.dataset.state === ${JSON.stringify(state)}`, `the page drawn in state ${state}`);
    expect(await page.evaluate<boolean>("document.getElementById('stale').hidden")).toBe(true); // it reached its data
    await check(page);
    const path = join(SCREENSHOTS, file);
    await page.screenshot(path);
    return path;
  } finally {
    await page.close();
  }
}

test("healthy: every route ok or idle, the refusing endpoint not yet judged (no traffic), the page green", async () => {
  expect(new Set(await send("/shop", 40))).toEqual(new Set([200]));
  expect(new Set(await send("/catalog", 20))).toEqual(new Set([200]));
  const s = await status();
  expect(s.summary.state).toBe("ok");
  const storefront = s.routes.find((r) => r.name === "storefront")!;
  expect(storefront.state).toBe("ok");
  expect(storefront.traffic.requests).toBe(40);
  expect(storefront.traffic.error_rate).toBe(0);
  expect(storefront.traffic.classes["2xx"]).toBe(40);
  expect(storefront.traffic.p99_ms).not.toBeNull();
  expect(storefront.chart.rate.length).toBeGreaterThanOrEqual(1);
  const catalog = s.routes.find((r) => r.name === "catalog")!;
  expect(catalog.chain.map((l) => [l.cluster, l.role, l.serving])).toEqual([["catalog-main", "primary", true], ["catalog-backup", "failover", false]]);
  expect(catalog.chain[0]!.requests).toBe(20);
  // No traffic and no health check: not "healthy" — nothing is known of it yet.
  const gateway = s.clusters.find((c) => c.name === "payment-gw")!;
  expect(gateway.endpoints[0]!.state).toBe("idle");
  expect(gateway.endpoints[0]!.label).toBe("no traffic");
  expect(s.config_changes[0]).toMatchObject({ source: "start", result: "ok", version: 1 });

  const shot = await render("status-healthy.png", "ok", async (page) => {
    const banner = await element(page, "#banner");
    expect(banner.classes).toEqual(["ok"]);
    expect(banner.text).toBe("✔ No failures: 2 routes ok, 1 without traffic");
    expect(await element(page, 'tr[data-route="storefront"]')).toMatchObject({ classes: ["ok"], state: "ok" });
    expect(await element(page, 'tr[data-route="checkout"]')).toMatchObject({ classes: ["idle"], state: "idle" });
    expect((await element(page, `tr[data-endpoint="127.0.0.1:${deadPort}"] .pill`)).text).toBe("no traffic");
    expect(await element(page, '[data-chain-cluster="catalog-main"].serving')).toMatchObject({ found: true, text: "▶ catalog-main 20" });
    expect(await page.evaluate<number>("document.querySelectorAll('tr[data-route=\"storefront\"] svg.spark').length")).toBe(3);
  });
  console.log(`screenshot (healthy): ${shot}`);
}, 60_000);

test("outage: the refusing route and its endpoint are failing, with the last failure's reason; the failover chain shows who serves", async () => {
  mainHealthy = false;
  await waitFor("catalog-main unhealthy", () => proxy.running.state.runtime.current.clusters.get("catalog-main")!.available().length === 0);
  const refused = await send("/pay", 300);
  expect(refused.filter((s) => s === 502).length).toBe(300);
  expect(new Set(await send("/catalog", 20))).toEqual(new Set([200]));
  expect(new Set(await send("/shop", 10))).toEqual(new Set([200]));
  // A refused reload is listed with its first problem; then the good file comes back (version 2).
  const good = readFileSync(proxy.configFile, "utf8");
  proxy.writeConfig({ listeners: [{ address: "127.0.0.1", port: proxy.port }], ...config, routes: [{ name: "broken", to: "nowhere" }] });
  expect(await proxy.running.reload()).toBe(false);
  writeFileSync(proxy.configFile, good);
  expect(await proxy.running.reload()).toBe(true);
  await waitFor("version 2", () => proxy.running.state.runtime.current.version >= 2);

  const s = await status();
  expect(s.summary.state).toBe("failing");
  expect(s.summary.failing.routes).toEqual(["checkout"]);
  expect(s.summary.headline).toStartWith("1 route failing");
  const checkout = s.routes.find((r) => r.name === "checkout")!;
  expect(checkout.state).toBe("failing");
  expect(checkout.traffic.requests).toBe(300);
  expect(checkout.traffic.error_rate).toBe(1);
  expect(checkout.traffic.classes["5xx"]).toBe(300);
  expect(checkout.traffic.classes.failed).toBe(300);
  expect(checkout.traffic.top_error).toEqual({ code: "upstream_connect_refused", count: 300 });
  expect(checkout.reasons[0]).toBe("100% of 300 requests failed in the last minute (mostly upstream_connect_refused)");
  const endpoint = s.clusters.find((c) => c.name === "payment-gw")!.endpoints[0]!;
  expect(endpoint).toMatchObject({ address: `127.0.0.1:${deadPort}`, state: "failing", label: "failing", health_check: "none" });
  expect(endpoint.tries).toMatchObject({ total: 300, error: 300, error_rate: 1 });
  expect(endpoint.last_failure).toMatchObject({ code: "upstream_connect_refused", message: "the upstream refused the connection" });
  expect(Date.now() - Date.parse(endpoint.last_failure!.at)).toBeLessThan(60_000);
  expect(s.clusters.find((c) => c.name === "payment-gw")!.state).toBe("failing");

  const storefront = s.routes.find((r) => r.name === "storefront")!;
  expect(storefront.state).toBe("ok");
  expect(storefront.traffic.error_rate).toBe(0);
  expect(s.clusters.find((c) => c.name === "shop")!.endpoints[0]!.state).toBe("ok");

  const catalog = s.routes.find((r) => r.name === "catalog")!;
  expect(catalog.chain.map((l) => [l.cluster, l.serving, l.state])).toEqual([["catalog-main", false, "failing"], ["catalog-backup", true, "ok"]]);
  expect(catalog.chain[1]!.requests).toBe(20);
  expect(catalog.state).toBe("degraded");
  expect(catalog.reasons).toContain("failed over: catalog-main unavailable, catalog-backup serving");

  expect(s.config_changes[0]).toMatchObject({ source: "file", result: "ok" });
  const refusal = s.config_changes.find((c) => c.result === "refused")!;
  expect(refusal).toMatchObject({ source: "file", version: 1, problems: 1 });
  expect(refusal.problem).toStartWith('routes[0].to: unknown cluster "nowhere"');

  const shot = await render("status-outage.png", "failing", async (page) => {
    const banner = await element(page, "#banner");
    expect(banner.classes).toEqual(["failing"]);
    expect(banner.text).toStartWith("✖ 1 route failing");
    expect(banner.text).toContain("route checkout: 100% of 300 requests failed in the last minute (mostly upstream_connect_refused)");
    expect(await element(page, 'tr[data-route="checkout"]')).toMatchObject({ classes: ["failing", "has-why"], state: "failing" });
    const refusing = await element(page, `tr[data-endpoint="127.0.0.1:${deadPort}"]`);
    expect(refusing).toMatchObject({ classes: ["failing"], state: "failing" });
    expect(refusing.text).toContain("upstream_connect_refused the upstream refused the connection");
    expect((await element(page, `tr[data-endpoint="127.0.0.1:${deadPort}"] .pill`)).text).toBe("failing");
    expect(await element(page, '.card[data-cluster="payment-gw"]')).toMatchObject({ classes: ["card", "failing"], state: "failing" });
    expect(await element(page, 'tr[data-route="storefront"]')).toMatchObject({ classes: ["ok"], state: "ok" });
    expect(await element(page, 'tr[data-route="catalog"]')).toMatchObject({ state: "degraded" });
    expect(await element(page, '[data-chain-cluster="catalog-backup"].serving')).toMatchObject({ found: true });
    expect(await element(page, '[data-chain-cluster="catalog-main"].serving')).toMatchObject({ found: false });
    expect((await element(page, "#changes")).text).toContain('refused1routes[0].to: unknown cluster "nowhere"');
    // The serialized document says the same (what --dump-dom would print).
    expect(await page.dom()).toContain('<tr class="failing has-why" data-route="checkout" data-state="failing">');
  });
  console.log(`screenshot (outage): ${shot}`);
}, 60_000);

test("without the token neither the page nor its data is served", async () => {
  const page = await openPage(`${admin}/status`);
  try {
    await page.waitFor("document.body && document.body.textContent.length > 0", "the refusal");
    const dom = await page.dom();
    expect(dom).toContain("the admin API needs Authorization: Bearer");
    expect(dom).not.toContain("storefront");
  } finally {
    await page.close();
  }
  expect((await fetch(`${admin}/status.json`)).status).toBe(401);
  expect((await fetch(`${admin}/status.json?token=${TOKEN}`)).status).toBe(401); // the query token is for the page only
}, 60_000);
