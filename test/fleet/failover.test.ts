/**
 * Redis failed over to a replica that had not received the latest writes (replication cut, then the
 * primary lost), behind one stable address as a managed Redis gives (a TCP switch here). Three real
 * instances: each finds the log behind what it applied and empties its caches (it cannot know what
 * it missed), puts the newer fleet config back instead of going back with Redis, and purges and
 * pushes work on the new primary. Idempotency records written after the cut are gone (documented).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { type TcpSwitch, tcpSwitch } from "../helpers/tcp-switch.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let primary: TestRedis;
let replica: TestRedis;
let sw: TcpSwitch;
let up: Upstream;
let fleet: FleetMember[];
let version = 1;
let payments = 0;

const HOST = { host: "api.example.com" };
const ROUTES = (name: string) => [
  { name, match: { path: { prefix: `/${name}` } }, to: "up" },
  { name: "items", match: { path: { prefix: "/items" } }, to: "up", cache: { name: "main" } },
  { name: "pay", match: { path: { prefix: "/pay" } }, to: "up", idempotency: {} },
];

beforeAll(async () => {
  primary = await startRedis();
  replica = await startRedis();
  await primary.command("CONFIG", ["SET", "repl-diskless-sync-delay", "0"]); // the replica's first sync at once, not after 5 s
  await replica.command("REPLICAOF", ["127.0.0.1", String(primary.port)]);
  sw = tcpSwitch(primary.port);
  up = startUpstream((req) => {
    if (req.method === "POST") return Response.json({ payment: ++payments }, { status: 201 });
    return new Response(`item v${version}`, { headers: { "cache-control": "max-age=300" } });
  });
  fleet = await startFleet(3, ({ admin }) => memberConfig(sw.url, admin, { caches: { main: {} }, routes: ROUTES("v0"), clusters: { up: { endpoints: [up.origin] } } }));
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  sw.stop();
  await replica.stop();
  await primary.stop();
  up.stop(true);
});

const put = (member: FleetMember, routes: unknown[]) =>
  fetch(`${member.admin}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...(JSON.parse(readFileSync(member.configFile, "utf8")) as object), routes }) });
const get = async (member: FleetMember, path: string) => {
  const res = await fetch(`${member.proxy.origin}${path}`, { headers: HOST });
  return { status: res.status, body: await res.text(), cache: res.headers.get("x-cache") };
};
const pay = (member: FleetMember) => fetch(`${member.proxy.origin}/pay`, { method: "POST", body: "{}", headers: { ...HOST, "idempotency-key": "after-the-cut" } });
const metric = async (member: FleetMember, series: string): Promise<number> => {
  const line = (await (await fetch(`${member.admin}/metrics`)).text()).split("\n").find((l) => l.startsWith(series));
  return line === undefined ? 0 : Number(line.split(" ").pop());
};

test("failover to a replica that lacks the latest writes: caches emptied, the newer config put back, the fleet works on", async () => {
  expect((await put(fleet[0]!, ROUTES("v1"))).status).toBe(200); // fleet config version 1
  for (const m of fleet) {
    await get(m, "/items/1");
    expect((await get(m, "/items/1")).cache).toBe("HIT");
  }
  await waitFor("the replica has version 1", async () => String(await replica.command("HGET", ["switchyard:fleet:config", "version"])) === "1");

  // Replication is cut; the fleet goes on writing to the primary only.
  await replica.command("REPLICAOF", ["NO", "ONE"]);
  expect((await put(fleet[1]!, ROUTES("v2"))).status).toBe(200); // version 2, on the primary only
  version = 2;
  expect((await fetch(`${fleet[2]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", key: "http://api.example.com/items/1" }) })).status).toBe(200);
  expect((await pay(fleet[0]!)).status).toBe(201);
  await Bun.sleep(100); // the record is written as the answer ends
  expect((await pay(fleet[1]!)).headers.get("idempotent-replayed")).toBe("true");

  // The primary is lost; the address now leads to the replica.
  await primary.kill();
  sw.switchTo(replica.port);

  await waitFor("every instance has noticed the log went back", async () => (await Promise.all(fleet.map((m) => metric(m, 'switchyard_fleet_purge_log_lost_total{action="clear"}')))).every((v) => v >= 1), 10_000);
  await waitFor("every instance in sync again", async () => (await Promise.all(fleet.map((m) => metric(m, "switchyard_fleet_in_sync")))).every((v) => v === 1), 10_000);
  // The replica had version 1: an instance put version 2 back, and nobody went back to v1's routes.
  await waitFor("version 2 back in Redis", async () => String(await replica.command("HGET", ["switchyard:fleet:config", "version"])) === "2");
  expect(fleet.some((m) => m.proxy.events.some((e) => String(e.msg).startsWith("fleet: redis had an older fleet config")))).toBe(true);
  for (const m of fleet) {
    expect((await get(m, "/v2/x")).status).toBe(200);
    expect((await get(m, "/v1/x")).status).toBe(404);
    expect(await get(m, "/items/1")).toMatchObject({ body: "item v2" }); // emptied caches: nothing older is served
  }
  // Documented loss: the record written after the cut is gone; the retry runs again.
  const before = payments;
  const retry = await pay(fleet[2]!);
  expect(retry.status).toBe(201);
  expect(retry.headers.get("idempotent-replayed")).toBeNull();
  expect(payments).toBe(before + 1);
  // The fleet works on the new primary: a purge reaches everyone, a push is version 3 with three ACKs.
  version = 3;
  const purge = await fetch(`${fleet[0]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", key: "http://api.example.com/items/1" }) });
  expect(purge.status).toBe(200);
  for (const m of fleet) expect((await get(m, "/items/1")).body).toBe("item v3");
  const pushed = await put(fleet[2]!, ROUTES("v3"));
  expect(pushed.status).toBe(200);
  expect(((await pushed.json()) as { fleet: unknown }).fleet).toMatchObject({ version: 3, instances: [{ answer: "ack" }, { answer: "ack" }, { answer: "ack" }] });
}, 30_000);
