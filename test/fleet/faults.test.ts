/**
 * Redis faults under load, three real instances: Redis killed and restarted empty, Redis hung
 * (SIGSTOP), an instance started while Redis is down. Every request is answered — none waits on
 * Redis past its timeout (200ms here) — no process crashes, each feature does what the README says
 * it does without Redis, and the fleet is whole again once Redis is back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let redis: TestRedis;
let up: Upstream;
let fleet: FleetMember[];
let next = 0;
let qVersion = 1;

beforeAll(async () => {
  redis = await startRedis();
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST") return Response.json({ n: ++next, body: await req.text() }, { status: 201 });
    if (path === "/items/q") return new Response(`q v${qVersion}`, { headers: { "cache-control": "max-age=300" } });
    return new Response(`${path} ok`, { headers: { "cache-control": "max-age=300" } });
  });
  fleet = await startFleet(3, ({ admin }) => memberConfig(redis.url, admin, {
    caches: { main: {} },
    routes: [
      { name: "items", match: { path: { prefix: "/items" } }, to: "up", cache: { name: "main" } },
      { name: "pay", match: { path: { prefix: "/pay" } }, to: "up", idempotency: {} },
      { name: "plain", to: "up" },
    ],
    clusters: { up: { endpoints: [up.origin] } },
  }));
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  await redis.stop();
  up.stop(true);
});

const HOST = { host: "api.example.com" };
interface Result { kind: string; ms: number; status: number | string }

/** 12 clients over the three instances until `ms` passes: cached GETs, POSTs with fresh Idempotency-Keys, plain GETs. */
async function load(ms: number): Promise<Result[]> {
  const results: Result[] = [];
  const deadline = performance.now() + ms;
  let n = 0;
  await Promise.all(Array.from({ length: 12 }, async (_, client) => {
    while (performance.now() < deadline) {
      const i = n++;
      const member = fleet[i % 3]!;
      const kind = ["cached", "idempotent", "plain"][client % 3]!;
      const started = performance.now();
      const init: RequestInit = kind === "idempotent"
        ? { method: "POST", body: `{"i":${i}}`, headers: { ...HOST, "idempotency-key": `load-${i}`, "content-type": "application/json" } }
        : { headers: HOST };
      const path = kind === "cached" ? `/items/${i % 5}` : kind === "idempotent" ? "/pay" : "/plain";
      try {
        const res = await fetch(`${member.proxy.origin}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
        results.push({ kind, ms: performance.now() - started, status: res.status });
      } catch (e) {
        results.push({ kind, ms: performance.now() - started, status: String(e) });
      }
    }
  }));
  return results;
}

function summary(results: Result[]) {
  const byKind: Record<string, { count: number; statuses: Record<string, number>; max_ms: number }> = {};
  for (const r of results) {
    const k = (byKind[r.kind] ??= { count: 0, statuses: {}, max_ms: 0 });
    k.count++;
    k.statuses[String(r.status)] = (k.statuses[String(r.status)] ?? 0) + 1;
    k.max_ms = Math.max(k.max_ms, Math.round(r.ms));
  }
  return byKind;
}

const metric = async (member: FleetMember, series: string): Promise<number> => {
  const text = await (await fetch(`${member.admin}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.split(" ").pop());
};
const alive = () => fleet.every((m) => m.proxy.proc.exitCode === null);
const put = (member: FleetMember, routes: unknown[]) =>
  fetch(`${member.admin}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...JSON.parse(readFileSync(member.configFile, "utf8")) as object, routes }) });

const ROUTES = (extra: string) => [
  { name: extra, match: { path: { prefix: `/${extra}` } }, to: "up" },
  { name: "items", match: { path: { prefix: "/items" } }, to: "up", cache: { name: "main" } },
  { name: "pay", match: { path: { prefix: "/pay" } }, to: "up", idempotency: {} },
  { name: "plain", to: "up" },
];

test("Redis killed mid-load, then restarted empty: every request answered in time, features fall back as documented, the fleet heals", async () => {
  expect((await put(fleet[0]!, ROUTES("before-kill"))).status).toBe(200); // fleet config version 1
  const running = load(3000);
  await Bun.sleep(800);
  await redis.kill();
  await Bun.sleep(150);
  // Without Redis: a purge is applied on this instance only (503 says so), a config push changes nothing (503), /fleet knows itself.
  const purge = await fetch(`${fleet[1]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", prefix: "http://api.example.com/items/" }) });
  expect(purge.status).toBe(503);
  expect(await purge.json()).toMatchObject({ fleet: { published: false, complete: false } });
  const pushed = await put(fleet[2]!, ROUTES("during-outage"));
  expect(pushed.status).toBe(503);
  expect(((await pushed.json()) as { error: string }).error).toBe("fleet_unavailable");
  const view = (await (await fetch(`${fleet[0]!.admin}/fleet`)).json()) as { redis: { reachable: boolean }; instances: { id: string }[] };
  expect(view.redis.reachable).toBe(false);
  expect(view.instances.map((i) => i.id)).toEqual(["machine-0"]);
  await Bun.sleep(700);
  await redis.restart(); // empty: no epoch, log, records, config
  const results = await running;
  const s = summary(results);
  console.log(JSON.stringify({ figure: "redis killed at 0.8s, restarted empty at ~1.8s, 3s of load", ...s }));
  expect(results.filter((r) => typeof r.status === "string")).toEqual([]); // nothing failed or hung
  expect(Object.keys(s.cached!.statuses)).toEqual(["200"]);
  expect(Object.keys(s.plain!.statuses)).toEqual(["200"]);
  expect(Object.keys(s.idempotent!.statuses)).toEqual(["201"]); // on_failure: local — this machine's libSQL records
  for (const k of Object.values(s)) expect(k.max_ms).toBeLessThan(800); // one 200ms Redis timeout at most, plus a loaded machine's noise
  expect(alive()).toBe(true);
  for (const m of fleet) {
    expect(await metric(m, 'switchyard_fleet_idempotency_total{outcome="local"}')).toBeGreaterThan(0);
    expect(await metric(m, 'switchyard_fleet_redis_errors_total{feature="idempotency",')).toBeGreaterThan(0);
  }
  // Back: each agent sees another epoch (Redis lost its data), empties its caches (on_log_lost: clear), is in sync again,
  // and the fleet config it runs is put back in Redis for instances that start later.
  await waitFor("every instance in sync again", async () => (await Promise.all(fleet.map((m) => metric(m, "switchyard_fleet_in_sync")))).every((v) => v === 1), 10_000);
  for (const m of fleet) expect(await metric(m, 'switchyard_fleet_purge_log_lost_total{action="clear"}')).toBeGreaterThanOrEqual(1);
  await waitFor("the fleet config put back", async () => String(await redis.command("HGET", ["switchyard:fleet:config", "version"])) === "1");
  const again = await put(fleet[1]!, ROUTES("after-restart"));
  expect(again.status).toBe(200);
  expect(((await again.json()) as { fleet: { version: number; instances: { answer: string }[] } }).fleet).toMatchObject({ version: 2, instances: [{ answer: "ack" }, { answer: "ack" }, { answer: "ack" }] });
  const complete = await fetch(`${fleet[0]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", prefix: "http://api.example.com/items/" }) });
  expect(complete.status).toBe(200);
}, 30_000);

test("Redis hung (SIGSTOP) mid-load: no request waits past the timeout, nothing crashes; all recovers on SIGCONT", async () => {
  const q = async (m: FleetMember) => (await fetch(`${m.proxy.origin}/items/q`, { headers: HOST })).text();
  for (const m of fleet) await q(m);
  const running = load(2500);
  await Bun.sleep(500);
  redis.pause();
  await Bun.sleep(300);
  // A purge while Redis hangs: applied here, answered 503 after one timeout, and queued for the fleet.
  qVersion = 2;
  const during = await fetch(`${fleet[0]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", key: "http://api.example.com/items/q" }) });
  expect(during.status).toBe(503);
  expect(((await during.json()) as { fleet: { error: string } }).fleet.error).toStartWith("applied on this instance; sent to the fleet when redis answers again");
  expect(await q(fleet[0]!)).toBe("q v2");
  await Bun.sleep(900);
  redis.resume();
  const results = await running;
  const s = summary(results);
  console.log(JSON.stringify({ figure: "redis SIGSTOPped at 0.5s for 1.2s, 2.5s of load", ...s }));
  expect(results.filter((r) => typeof r.status === "string")).toEqual([]);
  expect(Object.keys(s.cached!.statuses)).toEqual(["200"]);
  expect(Object.keys(s.idempotent!.statuses)).toEqual(["201"]);
  for (const k of Object.values(s)) expect(k.max_ms).toBeLessThan(800);
  expect(alive()).toBe(true);
  for (const m of fleet) expect(await metric(m, 'switchyard_fleet_redis_errors_total{feature="idempotency",reason="timeout"}')).toBeGreaterThanOrEqual(1);
  await waitFor("every instance in sync again", async () => (await Promise.all(fleet.map((m) => metric(m, "switchyard_fleet_in_sync")))).every((v) => v === 1), 10_000);
  // The purge made during the hang reached the others once Redis answered again.
  await waitFor("the queued purge everywhere", async () => (await q(fleet[1]!)) === "q v2" && (await q(fleet[2]!)) === "q v2", 5000);
  expect(await metric(fleet[0]!, 'switchyard_fleet_purges_total{result="published_late"}')).toBe(1);
  const purge = await fetch(`${fleet[2]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", prefix: "http://api.example.com/items/" }) });
  expect(purge.status).toBe(200);
}, 30_000);

test("an instance that starts while Redis is down starts from the fleet config it saved, and catches up when Redis returns", async () => {
  const member = fleet[2]!;
  expect(await member.proxy.stop()).toBe(0);
  await redis.kill();
  const started = performance.now();
  await member.restart();
  expect(performance.now() - started).toBeLessThan(5000);
  // The fleet's route (version 2: /after-restart), not its file's (the file has none).
  expect((await fetch(`${member.proxy.origin}/after-restart/x`)).status).toBe(200);
  expect(member.proxy.events.some((e) => e.msg === "fleet: starting from the fleet config saved here")).toBe(true);
  const view = (await (await fetch(`${member.admin}/fleet`)).json()) as { redis: { reachable: boolean }; fleet_version: number };
  expect(view).toMatchObject({ redis: { reachable: false }, fleet_version: 2 });
  await redis.restart();
  await waitFor("in sync after Redis returned", async () => (await metric(member, "switchyard_fleet_in_sync")) === 1, 10_000);
  await waitFor("three instances again", async () => ((await (await fetch(`${fleet[0]!.admin}/fleet`)).json()) as { instances: unknown[] }).instances.length === 3, 10_000);
}, 30_000);
