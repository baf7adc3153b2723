/**
 * Config to every instance (three real processes, one real redis-server): a config PUT or pushed
 * to any instance is in force on all three within 1 s (timed over 20 pushes), GetConfig on any
 * instance lists each one's version and ACK or NACK, an instance that cannot put it in force says
 * why and keeps its config, a push built on an outdated config is refused, and a reload from an
 * instance's own file keeps the fleet's routes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { Code, type ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ConfigAnswer, ConfigService } from "../../src/gen/switchyard/config/v1/config_pb.ts";
import type { ConfigInput } from "../../src/config/schema.ts";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let redis: TestRedis;
let a: Upstream;
let b: Upstream;
let fleet: FleetMember[];
const configs: ConfigInput[] = [];

beforeAll(async () => {
  redis = await startRedis();
  a = startUpstream((req) => new Response(`a ${new URL(req.url).pathname}`));
  b = startUpstream((req) => new Response(`b ${new URL(req.url).pathname}`));
  fleet = await startFleet(3, ({ index, admin, dir }) => {
    // Instances 0 and 1 have a folder the NACK test's cache needs; instance 2 does not.
    if (index < 2) mkdirSync(`${dir}/only-here`);
    const config = memberConfig(redis.url, admin, {
      routes: [{ name: "old", match: { path: { prefix: "/old" } }, to: "a" }],
      clusters: { a: { endpoints: [a.origin] }, b: { endpoints: [b.origin] } },
    });
    configs[index] = config;
    return config;
  });
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  await redis.stop();
  a.stop(true);
  b.stop(true);
});

const answer = async (member: FleetMember, path: string) => {
  const res = await fetch(`${member.proxy.origin}${path}`);
  return res.status === 200 ? await res.text() : `${res.status}`;
};
const client = (member: FleetMember) => createClient(ConfigService, createConnectTransport({ baseUrl: member.admin }));

/** Polls every instance until each answers `path` with `body`; the ms it took from `since`. */
async function allServe(path: string, body: string, since: number): Promise<number> {
  const done = new Set<number>();
  await waitFor(`all instances serving ${path}`, async () => {
    await Promise.all(fleet.map(async (m, i) => {
      if (!done.has(i) && (await answer(m, path)) === body) done.add(i);
    }));
    return done.size === fleet.length;
  }, 5000);
  return performance.now() - since;
}

test("PUT /config at one instance: validated there, in force on all three, answered with every instance's ACK", async () => {
  const next = { ...configs[0]!, routes: [{ name: "new", match: { path: { prefix: "/new" } }, to: "b" }, { name: "old", match: { path: { prefix: "/old" } }, to: "a" }] };
  const started = performance.now();
  const res = await fetch(`${fleet[0]!.admin}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(next) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { fleet: { version: number; instances: { instance: string; answer: string; fleet_version: number }[] } };
  expect(body.fleet.version).toBe(1);
  expect(body.fleet.instances.map((i) => [i.instance, i.answer, i.fleet_version])).toEqual([["machine-0", "ack", 1], ["machine-1", "ack", 1], ["machine-2", "ack", 1]]);
  expect(await allServe("/new/x", "b /new/x", started)).toBeLessThan(1000);
  // Each kept its own listeners and admin port (local sections are never the fleet's).
  for (const m of fleet) expect((await fetch(`${m.admin}/healthz`)).status).toBe(200);
});

const figures: number[] = [];

test("20 pushes (PushSnapshot) to rotating instances: each in force on all three within 1 s", async () => {
  for (let i = 0; i < 20; i++) {
    const member = fleet[i % 3]!;
    const started = performance.now();
    const res = await client(member).pushSnapshot({
      versionInfo: `push-${i}`,
      routes: [{ name: `r${i}`, match: { path: { kind: { case: "prefix", value: `/r${i}` } } }, to: "b" }, { name: "old", match: { path: { kind: { case: "prefix", value: "/old" } } }, to: "a" }],
      clusters: { a: { endpoints: [{ address: a.origin }] }, b: { endpoints: [{ address: b.origin }] } },
    });
    expect(res.accepted).toBe(true);
    expect(res.instances.map((x) => x.answer)).toEqual([ConfigAnswer.ACK, ConfigAnswer.ACK, ConfigAnswer.ACK]);
    figures.push(await allServe(`/r${i}/y`, `b /r${i}/y`, started));
  }
  const sorted = [...figures].sort((x, y) => x - y);
  const p50 = sorted[Math.floor(sorted.length * 0.5)]!;
  const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
  console.log(JSON.stringify({ figure: "push → all three instances serve the new route", pushes: figures.length, p50_ms: Math.round(p50 * 10) / 10, p99_ms: Math.round(p99 * 10) / 10, max_ms: Math.round(sorted.at(-1)! * 10) / 10 }));
  expect(p99).toBeLessThan(1000);
}, 30_000);

test("GetConfig on any instance lists each instance's fleet version and ACK", async () => {
  for (const m of fleet) {
    const res = await client(m).getConfig({});
    expect(Number(res.fleetVersion)).toBe(21);
    expect(res.instances.map((i) => [i.instance, i.region, Number(i.fleetVersion), i.answer, Number(i.runningFleetVersion)])).toEqual([
      ["machine-0", "ams", 21, ConfigAnswer.ACK, 21], ["machine-1", "iad", 21, ConfigAnswer.ACK, 21], ["machine-2", "sin", 21, ConfigAnswer.ACK, 21],
    ]);
    expect(res.versionInfo).toBe("push-19");
  }
});

test("an instance that cannot put it in force NACKs with why and keeps its config; the others ACK", async () => {
  const next = {
    ...configs[1]!,
    caches: { main: { path: "only-here/cache.db" } },
    routes: [{ name: "cached", match: { path: { prefix: "/cached" } }, to: "b", cache: { name: "main" } }, { name: "old", match: { path: { prefix: "/old" } }, to: "a" }],
  };
  const res = await fetch(`${fleet[1]!.admin}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(next) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { fleet: { version: number; instances: { instance: string; answer: string; message: string | null; running_fleet_version: number }[] } };
  expect(body.fleet.version).toBe(22);
  const [i0, i1, i2] = body.fleet.instances;
  expect([i0!.answer, i1!.answer, i2!.answer]).toEqual(["ack", "ack", "nack"]);
  expect(i2!.message).toContain("only-here");
  expect(i2!.running_fleet_version).toBe(21);
  // Instance 2 still serves version 21's routes; the others the new one.
  expect(await answer(fleet[2]!, "/r19/z")).toBe("b /r19/z");
  expect(await answer(fleet[2]!, "/cached/z")).toBe("404");
  expect(await answer(fleet[0]!, "/cached/z")).toBe("b /cached/z");
  const view = await client(fleet[0]!).getConfig({});
  expect(view.instances.find((i) => i.instance === "machine-2")).toMatchObject({ answer: ConfigAnswer.NACK, fleetVersion: 22n, runningFleetVersion: 21n });
});

test("a push built on a config another push has replaced is refused (409 / aborted), and the instance takes the newer one", async () => {
  // Another control plane's push reaches the fleet first (written to Redis as an instance would).
  await redis.command("HSET", ["switchyard:fleet:config", "id", "someone-else", "version", "23"]);
  const res = await fetch(`${fleet[0]!.admin}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(configs[0]) });
  expect(res.status).toBe(409);
  expect(((await res.json()) as { error: string }).error).toBe("fleet_config_conflict");
  // The refused instance takes the newer config (and answers it).
  const answeredId = async () => (JSON.parse(String(await redis.command("HGET", ["switchyard:fleet:config:answers", "machine-0"]))) as { id: string }).id;
  await waitFor("machine-0 answered the newer config", async () => (await answeredId()) === "someone-else");
  // Through the config service: a Connect `aborted` error (retry), not a NACK of the config.
  await redis.command("HSET", ["switchyard:fleet:config", "id", "someone-else-2", "version", "24"]);
  const error = await client(fleet[0]!).pushSnapshot({ versionInfo: "late", routes: [{ to: "a" }], clusters: { a: { endpoints: [{ address: a.origin }] } } }).then(() => undefined, (e: unknown) => e as ConnectError);
  expect(error?.code).toBe(Code.Aborted);
  expect(error?.rawMessage).toContain("another push reached the fleet first (fleet config version 24)");
  await waitFor("machine-0 answered the newer config", async () => (await answeredId()) === "someone-else-2");
  // Built on it, a push goes through.
  expect((await client(fleet[0]!).pushSnapshot({ versionInfo: "built-on-it", routes: [{ to: "a" }], clusters: { a: { endpoints: [{ address: a.origin }] } } })).accepted).toBe(true);
});

test("a reload from an instance's own file keeps the fleet's routes (the file gives its own sections)", async () => {
  // Back to a config every instance can take, then SIGHUP instance 1 with an edited file.
  const fresh = { ...configs[2]!, routes: [{ name: "fleet-route", match: { path: { prefix: "/fleet-route" } }, to: "b" }] };
  await redis.command("DEL", ["switchyard:fleet:config"]); // as after a restart of Redis: the next push is taken
  const res = await fetch(`${fleet[2]!.admin}/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(fresh) });
  expect(res.status).toBe(200);
  await allServe("/fleet-route/1", "b /fleet-route/1", performance.now());
  const member = fleet[1]!;
  writeFileSync(member.configFile, JSON.stringify({ ...configs[1]!, access_log: { enabled: false, headers: ["x-edited"] } }, null, 2));
  const after = member.proxy.events.length;
  member.proxy.proc.kill("SIGHUP");
  await member.proxy.waitForEvent("config reloaded", after);
  expect(await answer(member, "/fleet-route/2")).toBe("b /fleet-route/2");
  expect(await answer(member, "/old/2")).toBe("404"); // the file's own routes are not back
});
