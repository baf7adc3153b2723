/**
 * The fail-open / fail-closed settings, both ways. purge.on_redis_failure with Redis hung
 * (SIGSTOP): `serve` (the default) answers from the cache while the instance cannot confirm it has
 * every purge; `bypass` forwards those requests as misses (counted) until Redis answers again and
 * the agent has caught up. idempotency.on_failure with Redis gone: `deny` answers 503, `allow`
 * forwards unrecorded (`local`, the default, is in faults.test.ts).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let redis: TestRedis;
let up: Upstream;
let fleet: FleetMember[];
let payments = 0;

beforeAll(async () => {
  redis = await startRedis();
  up = startUpstream((req) => req.method === "POST" ? Response.json({ payment: ++payments }, { status: 201 }) : new Response("fresh", { headers: { "cache-control": "max-age=300" } }));
  fleet = await startFleet(2, ({ index, admin }) => memberConfig(redis.url, admin, {
    caches: { main: {} },
    routes: [{ name: "pay", match: { path: { prefix: "/pay" } }, to: "up", idempotency: {} }, { name: "items", to: "up", cache: { name: "main" } }],
    clusters: { up: { endpoints: [up.origin] } },
  }, { purge: { on_redis_failure: index === 0 ? "serve" : "bypass" }, idempotency: { on_failure: index === 0 ? "deny" : "allow" } }));
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  await redis.stop();
  up.stop(true);
});

const xcache = async (member: FleetMember) => (await fetch(`${member.proxy.origin}/x`)).headers.get("x-cache");

test("Redis hung: serve answers from the cache, bypass forwards (and counts it); both hit again once Redis is back", async () => {
  const [serve, bypass] = [fleet[0]!, fleet[1]!];
  for (const m of fleet) {
    await xcache(m);
    expect(await xcache(m)).toBe("HIT");
  }
  redis.pause();
  try {
    await Bun.sleep(1200); // past the in-sync window (250 + 250 + 200 ms)
    const started = performance.now();
    expect(await xcache(serve)).toBe("HIT");
    expect(await xcache(bypass)).toBe("MISS");
    expect(performance.now() - started).toBeLessThan(1000); // each waits one 200ms timeout at most
    expect(await xcache(bypass)).toBe("MISS");
    const metrics = await (await fetch(`${bypass.admin}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_fleet_cache_bypassed_total\{cache="main"\} [1-9]/);
    expect(metrics).toContain("switchyard_fleet_in_sync 0");
  } finally {
    redis.resume();
  }
  await waitFor("bypass hits again", async () => (await xcache(bypass)) === "HIT", 5000);
});

test("Redis gone: idempotency on_failure deny answers 503 (fail closed), allow forwards every repeat unrecorded", async () => {
  const [deny, allow] = [fleet[0]!, fleet[1]!];
  await redis.kill();
  const pay = (member: FleetMember) => fetch(`${member.proxy.origin}/pay`, { method: "POST", body: "{}", headers: { "idempotency-key": "k-1" } });
  const denied = await pay(deny);
  expect(denied.status).toBe(503);
  expect(denied.headers.get("retry-after")).toBe("1");
  expect(((await denied.json()) as { error: string }).error).toBe("idempotency_unavailable");
  const before = payments;
  expect([(await pay(allow)).status, (await pay(allow)).status]).toEqual([201, 201]);
  expect(payments).toBe(before + 2); // not recorded: the repeat went upstream too
  const text = async (m: FleetMember) => (await fetch(`${m.admin}/metrics`)).text();
  expect(await text(deny)).toContain('switchyard_fleet_idempotency_total{outcome="denied"} 1');
  expect(await text(allow)).toContain('switchyard_fleet_idempotency_total{outcome="allowed"} 2');
  await redis.restart();
});
