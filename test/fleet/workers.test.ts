/**
 * A fleet instance with `workers: 2` (one machine, two processes on one port): the agent runs in
 * worker 0, yet a purge made at another instance is in force in both workers' memory tiers, a
 * fleet config reaches both workers, and an Idempotency-Key claimed in either is replayed elsewhere.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

let redis: TestRedis;
let up: Upstream;
let fleet: FleetMember[];
let version = 1;
let payments = 0;
const HOST = { host: "api.example.com" };

beforeAll(async () => {
  redis = await startRedis();
  up = startUpstream((req) => {
    if (req.method === "POST") return Response.json({ payment: ++payments }, { status: 201 });
    return new Response(`v${version} ${new URL(req.url).pathname}`, { headers: { "cache-control": "max-age=300" } });
  });
  fleet = await startFleet(2, ({ index, admin }) => memberConfig(redis.url, admin, {
    // Instance 1: two workers on a fixed port.
    ...(index === 1 ? { workers: 2, listeners: [{ address: "127.0.0.1", port: freePort() }] } : {}),
    caches: { main: {} },
    routes: [{ name: "items", match: { path: { prefix: "/items" } }, to: "up", cache: { name: "main" } }, { name: "pay", to: "up", idempotency: {} }],
    clusters: { up: { endpoints: [up.origin] } },
  }));
  await waitFor("both workers of instance 1", () => fleet[1]!.proxy.events.filter((e) => e.msg === "switchyard started").length === 2);
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  await redis.stop();
  up.stop(true);
});

/** 30 requests on fresh connections: spread over both workers by the kernel (reusePort). */
async function spread(path: string, init: RequestInit = {}): Promise<Set<string>> {
  const texts = await Promise.all(Array.from({ length: 30 }, async () => {
    const res = await fetch(`${fleet[1]!.proxy.origin}${path}`, { ...init, headers: { ...HOST, connection: "close", ...(init.headers as Record<string, string> | undefined) } });
    return `${res.status} ${await res.text()}`;
  }));
  return new Set(texts);
}
const workersSeen = (after: number) => new Set(fleet[1]!.proxy.events.slice(after).filter((e) => e.msg === "config pushed").map((e) => e.worker));

test("a purge at another instance is in force in both workers (file and each memory tier)", async () => {
  expect(await spread("/items/1")).toEqual(new Set(["200 v1 /items/1"]));
  expect(await spread("/items/1")).toEqual(new Set(["200 v1 /items/1"])); // now in both memory tiers
  version = 2;
  const res = await fetch(`${fleet[0]!.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", key: "http://api.example.com/items/1" }) });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { fleet: { confirmed: string[] } }).fleet.confirmed).toEqual(["machine-1"]);
  expect(await spread("/items/1")).toEqual(new Set(["200 v2 /items/1"]));
});

test("a fleet config pushed to another instance reaches both workers", async () => {
  const after = fleet[1]!.proxy.events.length;
  const doc = JSON.parse(readFileSync(fleet[0]!.configFile, "utf8")) as Record<string, unknown>;
  const res = await fetch(`${fleet[0]!.admin}/config`, {
    method: "PUT", headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...doc, routes: [{ name: "new", match: { path: { prefix: "/new" } }, to: "up" }, ...(doc.routes as unknown[])] }),
  });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { fleet: { instances: { answer: string }[] } }).fleet.instances.map((i) => i.answer)).toEqual(["ack", "ack"]);
  await waitFor("both workers of instance 1 have it", () => workersSeen(after).size === 2);
  expect(await spread("/new/x")).toEqual(new Set(["200 v2 /new/x"]));
});

test("an Idempotency-Key claimed in either worker is replayed at the other instance", async () => {
  const send = (member: FleetMember, key: string) => fetch(`${member.proxy.origin}/pay`, { method: "POST", body: "{}", headers: { ...HOST, "idempotency-key": key, connection: "close" } });
  for (let i = 0; i < 6; i++) {
    const first = await send(fleet[1]!, `w-${i}`);
    expect(first.status).toBe(201);
    await first.text();
    await waitFor("replayed at instance 0", async () => (await send(fleet[0]!, `w-${i}`)).headers.get("idempotent-replayed") === "true");
  }
  expect(payments).toBe(6);
});

test("two processes given one instance id: the clash is logged (each would answer for the other)", async () => {
  const { spawnProxy, writeTempConfig } = await import("../helpers/cli.ts");
  const file = writeTempConfig(memberConfig(redis.url, freePort(), { routes: [{ to: "up" }], clusters: { up: { endpoints: [up.origin] } } }));
  const twin = await spawnProxy(file.file, { FLY_MACHINE_ID: "machine-0", FLY_REGION: "ams" });
  try {
    const clash = "fleet: another instance uses this instance's id; give each its own FLY_MACHINE_ID (or host name)";
    await waitFor("the clash logged", () => twin.events.some((e) => e.msg === clash) || fleet[0]!.proxy.events.some((e) => e.msg === clash));
  } finally {
    await twin.stop();
    file.cleanup();
  }
});
