/**
 * Purges and invalidations across three instances (real processes, each with its own cache file
 * and memory tier, one real redis-server): a purge at one instance is in force at the others
 * before it is answered; an instance that could not confirm it (frozen with SIGSTOP, or stopped)
 * serves nothing older once it is back.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let redis: TestRedis;
let up: Upstream;
let fleet: FleetMember[];
/** What the upstream answers now, per path: a purge is what makes the new one seen. */
const content = new Map<string, number>();
let writes = 0;

beforeAll(async () => {
  redis = await startRedis();
  up = startUpstream((req) => {
    const path = new URL(req.url).pathname;
    if (req.method === "POST") {
      writes++;
      return new Response("written", { status: 201 });
    }
    const n = content.get(path) ?? 1;
    return new Response(`${path} v${n}`, { headers: { "cache-control": "max-age=300", "surrogate-key": `all ${path.split("/")[1]}` } });
  });
  fleet = await startFleet(3, ({ admin }) => memberConfig(redis.url, admin, {
    caches: { main: {} }, // each instance's own file, beside its config
    routes: [{ name: "items", to: "up", cache: { name: "main", purge_method: true } }],
    clusters: { up: { endpoints: [up.origin] } },
  }));
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  await redis.stop();
  up.stop(true);
});

const HOST = "api.example.com";
const get = async (member: FleetMember, path: string) => {
  const res = await fetch(`${member.proxy.origin}${path}`, { headers: { host: HOST } });
  return { body: await res.text(), cache: res.headers.get("x-cache") };
};
const purge = (member: FleetMember, by: Record<string, string>) =>
  fetch(`${member.admin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", ...by }) });
/** Every instance has `path` stored (a HIT on each). */
async function fill(path: string): Promise<void> {
  for (const m of fleet) {
    await get(m, path);
    expect((await get(m, path)).cache).toBe("HIT");
  }
}

test("a purge by key at one instance is in force at the other two (file and memory tier) before it is answered", async () => {
  await fill("/a/1");
  content.set("/a/1", 2);
  const res = await purge(fleet[0]!, { key: `http://${HOST}/a/1` });
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ purged: 1, fleet: { published: true, complete: true, confirmed: expect.arrayContaining(["machine-1", "machine-2"]), missing: [] } });
  for (const m of fleet) expect(await get(m, "/a/1")).toEqual({ body: "/a/1 v2", cache: "MISS" });
});

test("by prefix and by tag too; and the PURGE method on the route", async () => {
  await fill("/b/1");
  await fill("/c/1");
  await fill("/d/1");
  for (const p of ["/b/1", "/c/1", "/d/1"]) content.set(p, 2);
  expect((await purge(fleet[1]!, { prefix: `http://${HOST}/b/` })).status).toBe(200);
  expect((await purge(fleet[2]!, { tag: "c" })).status).toBe(200);
  const method = await fetch(`${fleet[0]!.proxy.origin}/d/1`, { method: "PURGE", headers: { host: HOST } });
  expect(method.status).toBe(200);
  expect(((await method.json()) as { fleet: { complete: boolean } }).fleet.complete).toBe(true);
  for (const m of fleet) for (const p of ["/b/1", "/c/1", "/d/1"]) expect((await get(m, p)).body).toBe(`${p} v2`);
});

test("a POST through one instance invalidates the URL on every instance before its answer (RFC 9111 §4.4)", async () => {
  await fill("/e/1");
  content.set("/e/1", 2);
  const write = await fetch(`${fleet[2]!.proxy.origin}/e/1`, { method: "POST", body: "x", headers: { host: HOST } });
  expect(write.status).toBe(201);
  for (const m of fleet) expect((await get(m, "/e/1")).body).toBe("/e/1 v2");
});

test("20 rounds under load: after each purge at instance 0, GETs through the other two never see the purged object", async () => {
  const stale: string[] = [];
  for (let round = 2; round <= 21; round++) {
    await Promise.all([get(fleet[1]!, "/f/1"), get(fleet[2]!, "/f/1")]); // stored (or a HIT) on both
    content.set("/f/1", round);
    expect((await purge(fleet[0]!, { key: `http://${HOST}/f/1` })).status).toBe(200);
    const seen = await Promise.all(Array.from({ length: 10 }, (_, i) => get(fleet[1 + (i % 2)]!, "/f/1")));
    for (const s of seen) if (s.body !== `/f/1 v${round}`) stale.push(`round ${round}: ${s.body} (${s.cache})`);
  }
  expect(stale).toEqual([]);
});

test("an instance frozen (SIGSTOP) during a purge: the purge is answered 202 naming it, and once it runs again it never serves the purged object", async () => {
  await fill("/g/1");
  content.set("/g/1", 2);
  const frozen = fleet[2]!;
  frozen.proxy.proc.kill("SIGSTOP");
  let res: Response;
  try {
    const started = performance.now();
    res = await purge(fleet[0]!, { key: `http://${HOST}/g/1` });
    expect(performance.now() - started).toBeLessThan(2500); // ack_timeout (1s), not forever
  } finally {
    frozen.proxy.proc.kill("SIGCONT");
  }
  expect(res.status).toBe(202);
  expect(await res.json()).toMatchObject({ purged: 1, fleet: { published: true, complete: false, confirmed: ["machine-1"], missing: ["machine-2"] } });
  // Right after it resumes: its first requests must not be answered from the entry.
  const first = await Promise.all([get(frozen, "/g/1"), get(frozen, "/g/1"), get(frozen, "/g/1")]);
  expect(first.map((r) => r.body)).toEqual(["/g/1 v2", "/g/1 v2", "/g/1 v2"]);
  // Its agent catches up (a read of the log that timed out while frozen, then the entries it missed): hits again.
  await waitFor("the resumed instance in sync", async () => (await get(frozen, "/g/1")).cache === "HIT");
});

test("an instance stopped during a purge catches up from the log when it starts again (its cache file kept the entry)", async () => {
  await fill("/h/1");
  content.set("/h/1", 2);
  const away = fleet[1]!;
  expect(await away.proxy.stop()).toBe(0);
  // A stopped instance left the live set: the purge does not wait for it.
  const res = await purge(fleet[0]!, { key: `http://${HOST}/h/1` });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { fleet: { confirmed: string[] } }).fleet.confirmed).toEqual(["machine-2"]);
  await away.restart();
  expect((await get(away, "/h/1")).body).toBe("/h/1 v2");
  const metrics = await (await fetch(`${away.admin}/metrics`)).text();
  expect(metrics).toMatch(/switchyard_fleet_purges_applied_total\{via="catch_up"\} [1-9]/);
  expect(metrics).not.toMatch(/switchyard_fleet_purge_log_lost_total\{/); // it knew what it missed
  await waitFor("machine-1 live again", async () => ((await (await fetch(`${fleet[0]!.admin}/fleet`)).json()) as { instances: unknown[] }).instances.length === 3);
}, 20_000);
