/** Global rate limits through a real redis-server: shared by instances, atomic, and what happens when Redis dies or hangs. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { ConfigInput } from "../../src/config/schema.ts";
import { SCRIPT_SHA } from "../../src/filters/rate-limit/redis-buckets.ts";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let redis: TestRedis;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  up = startUpstream(() => new Response("ok"));
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await redis.stop();
  up.stop(true);
});

type Limit = NonNullable<ConfigInput["rate_limits"]>[string];
const globalLimit = (rate: string, redisUrl: string, extra: Partial<Limit> = {}, redisExtra: Record<string, unknown> = {}): Limit => ({
  // A generous timeout by default: these tests are about sharing and atomicity, not about a busy machine's latency.
  key: { header: "x-user" }, rate, scope: "global", redis: { url: redisUrl, timeout: "2s", retry_interval: "300ms", ...redisExtra }, ...extra,
});

async function proxyWith(limit: Limit, extra: Partial<ConfigInput> = {}): Promise<TestProxy> {
  const proxy = await startProxy({
    rate_limits: { shared: limit },
    routes: [{ name: "r", to: "up", filters: [{ type: "rate_limit", limits: ["shared"] }] }],
    clusters: { up: { endpoints: [up.origin] } },
    ...extra,
  });
  cleanups.push(() => proxy.stop());
  return proxy;
}

const get = (proxy: { origin: string }, user: string) => fetch(`${proxy.origin}/x`, { headers: { "x-user": user } });

test("two instances share one global bucket: 5/min is 5 in total, with the RateLimit fields from Redis's count", async () => {
  const [a, b] = [await proxyWith(globalLimit("5/min", redis.url)), await proxyWith(globalLimit("5/min", redis.url))];
  const statuses: number[] = [];
  const remaining: string[] = [];
  for (let i = 0; i < 8; i++) {
    const res = await get(i % 2 === 0 ? a : b, "alice");
    statuses.push(res.status);
    remaining.push(res.headers.get("ratelimit") ?? "");
  }
  expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
  expect(remaining.slice(0, 5)).toEqual(['"shared";r=4;t=12', '"shared";r=3;t=24', '"shared";r=2;t=36', '"shared";r=1;t=48', '"shared";r=0;t=60']);
  expect(remaining[5]).toBe('"shared";r=0;t=12');
  // The bucket is one key in Redis that expires when it would be full again.
  const ttl = Number(await redis.command("PTTL", ["switchyard:rl:shared:alice"]));
  expect(ttl).toBeGreaterThan(55_000);
  expect(ttl).toBeLessThanOrEqual(60_000);
  expect((await get(b, "bob")).status).toBe(200); // another key
  // A hostile 8 KB key is one short digest key in Redis, limited like any other.
  const huge = "h".repeat(8000);
  expect([(await get(a, huge)).status, (await get(b, huge)).status]).toEqual([200, 200]);
  const keys = (await redis.command("KEYS", ["switchyard:rl:shared:*"])) as string[];
  expect(keys.every((k) => k.length < 80)).toBe(true);
});

test("atomic under concurrency: 150 concurrent requests through two instances against a burst of 40 → exactly 40 allowed", async () => {
  const [a, b] = [await proxyWith(globalLimit("40/h", redis.url)), await proxyWith(globalLimit("40/h", redis.url))];
  const statuses = await Promise.all(Array.from({ length: 150 }, (_, i) => get(i % 2 ? a : b, "herd").then((r) => r.status)));
  expect(statuses.filter((s) => s === 200)).toHaveLength(40);
  expect(statuses.filter((s) => s === 429)).toHaveLength(110);
});

test("a restarted Redis has lost the script: the limit loads it again (NOSCRIPT → EVAL) and goes on", async () => {
  const own = await startRedis();
  cleanups.push(() => own.stop());
  const proxy = await proxyWith(globalLimit("2/min", own.url));
  expect((await get(proxy, "u")).status).toBe(200);
  await own.kill();
  await own.restart();
  // After the retry interval, the first request reconnects; the empty Redis knows neither script nor bucket.
  await waitFor("redis in use again", async () => (await get(proxy, `probe-${Math.random()}`)).headers.get("ratelimit")?.includes("r=1") && Number(await own.command("DBSIZE", [])) > 0, 5000);
  expect([(await get(proxy, "v")).status, (await get(proxy, "v")).status, (await get(proxy, "v")).status]).toEqual([200, 200, 429]);
  expect(Number(await own.command("EXISTS", ["switchyard:rl:shared:v"]))).toBe(1); // decided in Redis, not by the fallback
  expect(await own.command("SCRIPT", ["EXISTS", SCRIPT_SHA])).toEqual([1]);
});

test("a key Redis refuses (another program's hash in its place): that request falls back, the others stay global", async () => {
  const proxy = await proxyWith(globalLimit("2/min", redis.url));
  await redis.command("HSET", ["switchyard:rl:shared:squatter", "field", "value"]);
  expect([(await get(proxy, "squatter")).status, (await get(proxy, "squatter")).status, (await get(proxy, "squatter")).status]).toEqual([200, 200, 429]);
  expect(await redis.command("HGET", ["switchyard:rl:shared:squatter", "field"])).toBe("value"); // untouched
  expect((await get(proxy, "tenant")).headers.get("ratelimit")).toBe('"shared";r=1;t=30');
  expect(Number(await redis.command("EXISTS", ["switchyard:rl:shared:tenant"]))).toBe(1);
});

let failing: ProxyProcess;
let failingRedis: TestRedis;
let adminPort = 0;

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

test("Redis killed mid-run: requests fail open onto the local limit, without delay; logged once, counted; back to global when Redis returns", async () => {
  failingRedis = await startRedis();
  cleanups.push(() => failingRedis.stop());
  adminPort = freePort();
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    admin: { address: "127.0.0.1", port: adminPort },
    access_log: { enabled: false },
    rate_limits: {
      open: globalLimit("3/min", failingRedis.url, {}, { timeout: "300ms" }),
      closed: globalLimit("3/min", failingRedis.url, {}, { timeout: "50ms", on_failure: "deny" }),
      lenient: globalLimit("3/min", failingRedis.url, {}, { timeout: "50ms", on_failure: "allow" }),
    },
    routes: [
      { name: "open", match: { path: { prefix: "/open" } }, to: "up", filters: [{ type: "rate_limit", limits: ["open"] }] },
      { name: "closed", match: { path: { prefix: "/closed" } }, to: "up", filters: [{ type: "rate_limit", limits: ["closed"] }] },
      { name: "lenient", match: { path: { prefix: "/lenient" } }, to: "up", filters: [{ type: "rate_limit", limits: ["lenient"] }] },
    ],
    clusters: { up: { endpoints: [up.origin] } },
  });
  cleanups.push(config.cleanup);
  failing = await spawnProxy(config.file);
  cleanups.push(() => failing.stop());
  const at = (path: string, user: string) => fetch(`${failing.origin}${path}`, { headers: { "x-user": user } });

  // Global while Redis is up: 2 of the 3 used.
  expect([(await at("/open/x", "carol")).status, (await at("/open/x", "carol")).status]).toEqual([200, 200]);
  await failingRedis.kill();

  // Fail open onto the local limit: this instance's own bucket (3/min, fresh) decides now.
  const started = performance.now();
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await at("/open/x", "carol")).status);
  expect(statuses).toEqual([200, 200, 200, 429, 429]);
  expect(performance.now() - started).toBeLessThan(1000);
  // on_failure: deny → 503 with Retry-After; allow → through, without RateLimit fields.
  const denied = await at("/closed/x", "dave");
  expect(denied.status).toBe(503);
  expect(denied.headers.get("retry-after")).toBe("1");
  expect(((await denied.json()) as { error: string }).error).toBe("rate_limit_unavailable");
  for (let i = 0; i < 5; i++) {
    const res = await at("/lenient/x", "erin");
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit")).toBeNull();
  }
  // Logged once per connection outage, however many requests fell back: even after the retry
  // interval (300 ms), when a request tries to reconnect and fails again (counted as an error).
  const errorsBefore = await metric("switchyard_rate_limit_redis_errors_total", 'limit="open",reason="error"');
  let late = 0;
  await waitFor("a failed reconnect", async () => {
    await at("/open/x", `late-${late++}`);
    return (await metric("switchyard_rate_limit_redis_errors_total", 'limit="open",reason="error"')) > errorsBefore;
  }, 5000);
  expect(failing.events.filter((e) => e.msg === "redis unreachable; global rate limits use their on_failure setting")).toHaveLength(1);
  const unreachable = failing.events.find((e) => e.msg === "redis unreachable; global rate limits use their on_failure setting")!;
  expect(unreachable.redis).toBe(`redis://127.0.0.1:${failingRedis.port}`);
  expect(await metric("switchyard_rate_limit_fallbacks_total", 'limit="open",mode="local"')).toBeGreaterThanOrEqual(8);
  expect(await metric("switchyard_rate_limit_fallbacks_total", 'limit="closed",mode="deny"')).toBe(1);
  expect(await metric("switchyard_rate_limit_fallbacks_total", 'limit="lenient",mode="allow"')).toBe(5);
  expect(await metric("switchyard_rate_limit_redis_errors_total", 'limit="open",reason="error"')).toBeGreaterThanOrEqual(1);
  expect(await metric("switchyard_rate_limit_decisions_total", 'limit="open",scope="local",decision="limited"')).toBeGreaterThanOrEqual(2);
  expect(await metric("switchyard_rate_limit_decisions_total", 'limit="closed",scope="global",decision="unavailable"')).toBe(1);

  // Redis back (empty): after the retry interval the global bucket decides again.
  await failingRedis.restart();
  await waitFor("the global limit back in force", async () => (await at("/open/x", `back-${Math.random()}`)).status === 200 && failing.events.some((e) => e.msg === "redis reachable again; global rate limits back in force"), 5000);
  expect(await metric("switchyard_rate_limit_decisions_total", 'limit="open",scope="global",decision="allowed"')).toBeGreaterThanOrEqual(3);
}, 30_000);

test("a hung Redis (stopped, connection open): a request waits the timeout, no longer, then the next ones skip Redis at once", async () => {
  // The connection is up again after the previous test.
  expect((await fetch(`${failing.origin}/open/x`, { headers: { "x-user": "hang-1" } })).status).toBe(200);
  failingRedis.pause();
  try {
    const timings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const res = await fetch(`${failing.origin}/open/x`, { headers: { "x-user": "hang-2" } });
      timings.push(performance.now() - started);
      expect([200, 429]).toContain(res.status);
    }
    expect(timings[0]).toBeGreaterThanOrEqual(290); // waited out the 300ms timeout…
    expect(timings[0]).toBeLessThan(1500); // …and no longer
    expect(timings.slice(1).every((t) => t < 200)).toBe(true); // then Redis is skipped: no wait at all
    expect(await metric("switchyard_rate_limit_redis_errors_total", 'limit="open",reason="timeout"')).toBeGreaterThanOrEqual(1);
  } finally {
    failingRedis.resume();
  }
  await waitFor("recovered after the hang", async () => (await fetch(`${failing.origin}/open/x`, { headers: { "x-user": `after-${Math.random()}` } })).headers.get("ratelimit") !== null && (await metric("switchyard_rate_limit_decisions_total", 'limit="open",scope="global",decision="allowed"')) >= 5, 5000);
}, 20_000);

test("a Redis that was never there: the proxy starts and serves on the local limit", async () => {
  const proxy = await proxyWith(globalLimit("2/min", `redis://127.0.0.1:${freePort()}`));
  expect([(await get(proxy, "z")).status, (await get(proxy, "z")).status, (await get(proxy, "z")).status]).toEqual([200, 200, 429]);
});
