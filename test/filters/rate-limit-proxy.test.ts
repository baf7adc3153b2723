/** Local rate limits through the whole proxy: 429s with Retry-After and the RateLimit fields, keys, reloads, floods, metrics. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { ConfigInput } from "../../src/config/schema.ts";
import { getFrom } from "../helpers/from-address.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
const hits = new Map<string, number>();
let proxy: TestProxy;

const config = (perIpRate: string): Omit<ConfigInput, "listeners"> => ({
  admin: { address: "127.0.0.1", port: 0 },
  rate_limits: {
    "per-ip": { key: "client_ip", rate: perIpRate },
    "per-tenant": { key: { header: "x-tenant" }, rate: "2/min" },
    "tenant-or-skip": { key: { header: "x-tenant" }, missing_key: "skip", rate: "1/min" },
    "whole-route": { key: "route", rate: "4/min" },
    quiet: { key: "client_ip", rate: "2/min" },
    roomy: { key: "client_ip", rate: "10/min" },
    tight: { key: ["client_ip", "route"], rate: "1/min" },
    flood: { key: { header: "x-flood" }, rate: "1/h", max_keys: 50 },
  },
  routes: [
    { name: "ip", match: { path: { prefix: "/ip" } }, to: "up", filters: [{ type: "rate_limit", limits: ["per-ip"] }] },
    { name: "tenant", match: { path: { prefix: "/tenant" } }, to: "up", filters: [{ type: "rate_limit", limits: ["per-tenant"] }] },
    { name: "skip", match: { path: { prefix: "/skip" } }, to: "up", filters: [{ type: "rate_limit", limits: ["tenant-or-skip"] }] },
    { name: "route", match: { path: { prefix: "/route" } }, to: "up", filters: [{ type: "rate_limit", limits: ["whole-route"] }] },
    { name: "quiet", match: { path: { prefix: "/quiet" } }, to: "up", filters: [{ type: "rate_limit", limits: ["quiet"], response_headers: false }] },
    { name: "two", match: { path: { prefix: "/two" } }, to: "up", filters: [{ type: "rate_limit", limits: ["roomy", "tight"] }] },
    { name: "flood", match: { path: { prefix: "/flood" } }, to: "up", filters: [{ type: "rate_limit", limits: ["flood"] }] },
    { name: "cors-too", match: { path: { prefix: "/cors" } }, to: "up", filters: [{ type: "cors", allow_origins: ["https://app.example"] }, { type: "rate_limit", limits: ["tight"] }] },
  ],
  clusters: { up: { endpoints: [up.origin] } },
});

beforeAll(async () => {
  up = startUpstream((req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    return new Response("ok", path === "/ip/upstream-policy" ? { headers: { ratelimit: '"origin";r=5;t=1', "ratelimit-policy": '"origin";q=10;w=1' } } : {});
  });
  proxy = await startProxy(config("3/min"));
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

test("per client IP: the burst passes with the RateLimit fields, then 429 JSON with Retry-After; the upstream never sees it", async () => {
  const seen = [];
  for (let i = 0; i < 4; i++) seen.push(await getFrom("127.0.0.2", `${proxy.origin}/ip/a`));
  expect(seen.map((r) => r.status)).toEqual([200, 200, 200, 429]);
  expect(seen.slice(0, 3).map((r) => r.headers.ratelimit)).toEqual(['"per-ip";r=2;t=20', '"per-ip";r=1;t=40', '"per-ip";r=0;t=60']);
  for (const r of seen) expect(r.headers["ratelimit-policy"]).toBe('"per-ip";q=3;w=60');
  const limited = seen[3]!;
  expect(limited.headers["retry-after"]).toBe("20");
  expect(limited.headers.ratelimit).toBe('"per-ip";r=0;t=20'); // t equals Retry-After (draft §6)
  expect(limited.headers["content-type"]).toBe("application/json");
  const body = JSON.parse(limited.body) as { error: string; message: string; request_id: string };
  expect(body).toEqual({ error: "rate_limited", message: 'rate limit "per-ip" exceeded; retry in 20s', request_id: limited.headers["x-request-id"]! });
  expect(hits.get("/ip/a")).toBe(3);
  // Another client address has its own bucket.
  expect((await getFrom("127.0.0.3", `${proxy.origin}/ip/a`)).status).toBe(200);
});

test("the access log names the refusal", async () => {
  for (let i = 0; i < 3; i++) await getFrom("127.0.0.9", `${proxy.origin}/ip/log`);
  const refused = await getFrom("127.0.0.9", `${proxy.origin}/ip/log`);
  expect(refused.status).toBe(429);
  const line = await proxy.logOf(refused.headers["x-request-id"]!);
  expect(line.status).toBe(429);
  expect(JSON.stringify(line)).toContain("rate_limited");
});

test("the upstream's own RateLimit fields stay; ours are added to the list", async () => {
  const res = await getFrom("127.0.0.10", `${proxy.origin}/ip/upstream-policy`);
  expect(res.headers["ratelimit-policy"]).toBe('"origin";q=10;w=1, "per-ip";q=3;w=60');
  expect(res.headers.ratelimit).toBe('"origin";r=5;t=1, "per-ip";r=2;t=20');
});

test("per header: each value has its own bucket; requests without it share the anonymous one — or skip the limit", async () => {
  const tenant = (value?: string) => fetch(`${proxy.origin}/tenant`, { headers: value === undefined ? {} : { "x-tenant": value } }).then((r) => r.status);
  expect([await tenant("a"), await tenant("a"), await tenant("a")]).toEqual([200, 200, 429]);
  expect(await tenant("b")).toBe(200);
  expect([await tenant(), await tenant(), await tenant()]).toEqual([200, 200, 429]); // no header: one shared bucket
  const skip = (value?: string) => fetch(`${proxy.origin}/skip`, { headers: value === undefined ? {} : { "x-tenant": value } });
  for (let i = 0; i < 5; i++) {
    const res = await skip();
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit")).toBeNull(); // no decision, no fields
  }
  expect([(await skip("c")).status, (await skip("c")).status]).toEqual([200, 429]);
});

test("per route: one bucket for every client of the route", async () => {
  const statuses = [];
  for (const from of ["127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8"]) statuses.push((await getFrom(from, `${proxy.origin}/route`)).status);
  expect(statuses).toEqual([200, 200, 200, 200, 429]);
});

test("response_headers: false keeps allowed responses clean; the 429 still carries the fields", async () => {
  const ok = await getFrom("127.0.0.11", `${proxy.origin}/quiet`);
  expect(ok.headers.ratelimit).toBeUndefined();
  expect(ok.headers["ratelimit-policy"]).toBeUndefined();
  await getFrom("127.0.0.11", `${proxy.origin}/quiet`);
  const refused = await getFrom("127.0.0.11", `${proxy.origin}/quiet`);
  expect(refused.status).toBe(429);
  expect(refused.headers.ratelimit).toBe('"quiet";r=0;t=30');
  expect(refused.headers["ratelimit-policy"]).toBe('"quiet";q=2;w=60');
});

test("several limits: all must pass; every decided limit is listed, the refusing one last", async () => {
  const first = await getFrom("127.0.0.12", `${proxy.origin}/two`);
  expect(first.status).toBe(200);
  expect(first.headers["ratelimit-policy"]).toBe('"roomy";q=10;w=60, "tight";q=1;w=60');
  expect(first.headers.ratelimit).toBe('"roomy";r=9;t=6, "tight";r=0;t=60');
  const second = await getFrom("127.0.0.12", `${proxy.origin}/two`);
  expect(second.status).toBe(429);
  expect(second.headers.ratelimit).toBe('"roomy";r=8;t=12, "tight";r=0;t=60');
  expect(JSON.parse(second.body).message).toContain('"tight"');
  // A composite key (client IP + route): the same client on another route has a fresh bucket.
  expect((await fetch(`${proxy.origin}/cors`, { headers: { origin: "https://app.example" } })).status).toBe(200);
  const refused = await fetch(`${proxy.origin}/cors`, { headers: { origin: "https://app.example" } });
  expect(refused.status).toBe(429);
  // Earlier filters still decorate the refusal, so a browser can read it.
  expect(refused.headers.get("access-control-allow-origin")).toBe("https://app.example");
});

test("hostile keys: 1,000 distinct header values (some of 8 KB) keep at most max_keys buckets; the evictions are counted", async () => {
  // In batches of 50: client and proxy share this process's fetch cap (256), which a larger batch would deadlock.
  const results: number[] = [];
  for (let start = 0; start < 1000; start += 50) {
    results.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => {
      const i = start + j;
      return fetch(`${proxy.origin}/flood`, { headers: { "x-flood": i % 10 === 0 ? `${i}`.padEnd(8000, "x") : `k${i}` } }).then((r) => r.status);
    }))));
  }
  expect(results.every((s) => s === 200)).toBe(true); // each a new key: each allowed once
  const text = await (await fetch(`${proxy.running.admin!.url.origin}/metrics`)).text();
  expect(Number(/^switchyard_rate_limit_buckets\{limit="flood"\} (\d+)$/m.exec(text)?.[1])).toBe(50);
  expect(Number(/^switchyard_rate_limit_evictions_total\{limit="flood"\} (\d+)$/m.exec(text)?.[1])).toBe(950);
  // One that kept its bucket is still refused.
  expect((await fetch(`${proxy.origin}/flood`, { headers: { "x-flood": "k999" } })).status).toBe(429);
});

test("decisions are counted by limit, scope and decision; labels stay bounded (no keys)", async () => {
  const text = await (await fetch(`${proxy.running.admin!.url.origin}/metrics`)).text();
  expect(Number(/^switchyard_rate_limit_decisions_total\{limit="per-ip",scope="local",decision="limited"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(2);
  expect(Number(/^switchyard_rate_limit_decisions_total\{limit="per-ip",scope="local",decision="allowed"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(7);
  expect(Number(/^switchyard_rate_limit_decisions_total\{limit="tenant-or-skip",scope="local",decision="skipped"\} (\d+)$/m.exec(text)?.[1])).toBe(5);
  expect(/127\.0\.0\.(2|13)\b/.test(text)).toBe(false); // client addresses (keys) never become labels
  expect(text.includes("k999")).toBe(false);
});

test("a reload keeps the buckets of an unchanged limit, and starts afresh when its settings change", async () => {
  for (let i = 0; i < 3; i++) await getFrom("127.0.0.13", `${proxy.origin}/ip/r`);
  expect((await getFrom("127.0.0.13", `${proxy.origin}/ip/r`)).status).toBe(429);
  proxy.writeConfig({ listeners: [{ address: "127.0.0.1", port: 0 }], ...config("3/min") });
  expect(await proxy.running.reload()).toBe(true);
  expect((await getFrom("127.0.0.13", `${proxy.origin}/ip/r`)).status).toBe(429);
  proxy.writeConfig({ listeners: [{ address: "127.0.0.1", port: 0 }], ...config("5/min") });
  expect(await proxy.running.reload()).toBe(true);
  const after = await getFrom("127.0.0.13", `${proxy.origin}/ip/r`);
  expect(after.status).toBe(200);
  expect(after.headers["ratelimit-policy"]).toBe('"per-ip";q=5;w=60');
});
