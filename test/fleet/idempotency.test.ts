/**
 * Idempotency keys across three instances (real processes, one real redis-server): one upstream
 * call for 50 concurrent requests with one key spread over the three; a retry on another instance
 * is replayed; a different request under the key is 422 everywhere; an answer too large to keep is
 * never sent again; a 5xx leaves no record. And GET /fleet lists the three.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type FleetMember, memberConfig, startFleet, stopFleet } from "../helpers/fleet.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { tempDir } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let redis: TestRedis;
let up: Upstream;
let fleet: FleetMember[];
const calls = new Map<string, number>();

beforeAll(async () => {
  redis = await startRedis();
  up = startUpstream(async (req) => {
    const url = new URL(req.url);
    const body = await req.text();
    const key = `${url.pathname}:${req.headers.get("idempotency-key")}`;
    const n = (calls.get(key) ?? 0) + 1;
    calls.set(key, n);
    if (url.pathname === "/slow") await Bun.sleep(300);
    if (url.pathname === "/big") return new Response("x".repeat(4096), { status: 201 });
    if (url.pathname === "/flaky" && n === 1) return new Response("try again", { status: 503 });
    return Response.json({ charge: key, n, got: body }, { status: 201, headers: { location: `/charges/${n}` } });
  });
  fleet = await startFleet(3, ({ admin }) => memberConfig(redis.url, admin, {
    routes: [{ name: "payments", to: "up", idempotency: { max_body: "64KiB" } }],
    clusters: { up: { endpoints: [up.origin] } },
  }, { idempotency: { max_answer: "1KiB" } }));
}, 30_000);
afterAll(async () => {
  await stopFleet(fleet);
  await redis.stop();
  up.stop(true);
});

// One Host, as behind Fly's anycast address (the fingerprint includes it; the instances' own ports differ here).
const post = (member: FleetMember, path: string, key: string, body = '{"amount":5}') =>
  fetch(`${member.proxy.origin}${path}`, { method: "POST", body, headers: { host: "api.example.com", "idempotency-key": key, "content-type": "application/json" } });

test("50 concurrent POSTs with one key over three instances: one upstream call, the rest 409 while it runs", async () => {
  const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post(fleet[i % 3]!, "/slow", "herd-1")));
  const statuses = answers.map((r) => r.status);
  expect(calls.get("/slow:herd-1")).toBe(1);
  expect(statuses.filter((s) => s === 201)).toHaveLength(1);
  expect(statuses.filter((s) => s === 409)).toHaveLength(49);
  const conflict = answers.find((r) => r.status === 409)!;
  expect(((await conflict.json()) as { error: string }).error).toBe("idempotency_request_in_progress");
});

test("a retry on another instance is replayed: same status, headers and body, idempotent-replayed: true, no second call", async () => {
  const first = await post(fleet[0]!, "/charges", "retry-1");
  expect(first.status).toBe(201);
  const body = await first.text();
  // The record is written as the body ends; the client's retry comes a moment later, elsewhere.
  let again: Response | undefined;
  for (let i = 0; i < 50 && (again === undefined || again.status === 409); i++) {
    if (again !== undefined) await Bun.sleep(10);
    again = await post(fleet[1]!, "/charges", "retry-1");
  }
  expect(again!.status).toBe(201);
  expect(again!.headers.get("idempotent-replayed")).toBe("true");
  expect(again!.headers.get("location")).toBe(first.headers.get("location")!);
  expect(await again!.text()).toBe(body);
  const third = await post(fleet[2]!, "/charges", "retry-1");
  expect(third.headers.get("idempotent-replayed")).toBe("true");
  expect(calls.get("/charges:retry-1")).toBe(1);
  // The record lives in Redis with the route's ttl (24h by default).
  const keys = (await redis.command("KEYS", ["switchyard:fleet:idem:*"])) as string[];
  expect(keys.length).toBeGreaterThan(0);
  const ttl = Number(await redis.command("PTTL", [keys[0]!]));
  expect(ttl).toBeGreaterThan(23 * 3600_000);
});

test("the same key with another body is 422 on every instance, as on one", async () => {
  await (await post(fleet[0]!, "/charges", "reuse-1", '{"amount":1}')).text();
  await Bun.sleep(50);
  for (const member of fleet) {
    const res = await post(member, "/charges", "reuse-1", '{"amount":2}');
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: string }).error).toBe("idempotency_key_reused");
  }
  expect(calls.get("/charges:reuse-1")).toBe(1);
});

test("an answer over max_answer is not kept: a retry elsewhere is 409 idempotency_answer_not_kept, never a second call", async () => {
  const first = await post(fleet[0]!, "/big", "big-1");
  expect(first.status).toBe(201);
  expect((await first.text()).length).toBe(4096); // the client got it whole
  await Bun.sleep(50);
  const retry = await post(fleet[2]!, "/big", "big-1");
  expect(retry.status).toBe(409);
  expect(retry.headers.get("idempotent-original-status")).toBe("201");
  expect(((await retry.json()) as { error: string }).error).toBe("idempotency_answer_not_kept");
  expect(calls.get("/big:big-1")).toBe(1);
});

test("a 5xx leaves no record: the retry on another instance goes upstream", async () => {
  expect((await post(fleet[0]!, "/flaky", "flaky-1")).status).toBe(503);
  await Bun.sleep(50);
  const retry = await post(fleet[1]!, "/flaky", "flaky-1");
  expect(retry.status).toBe(201);
  expect(retry.headers.get("idempotent-replayed")).toBeNull();
  expect(calls.get("/flaky:flaky-1")).toBe(2);
});

test("GET /fleet on any instance lists the three: id, region, version, started, last heartbeat, requests/s", async () => {
  const view = (await (await fetch(`${fleet[1]!.admin}/fleet`)).json()) as {
    self: string; redis: { reachable: boolean; url: string };
    instances: { id: string; region: string; version: string; started: string; last_heartbeat: string; requests_per_second: number; self: boolean }[];
  };
  expect(view.self).toBe("machine-1");
  expect(view.redis).toEqual({ url: redis.url, reachable: true });
  expect(view.instances.map((i) => [i.id, i.region, i.self])).toEqual([["machine-0", "ams", false], ["machine-1", "iad", true], ["machine-2", "sin", false]]);
  for (const i of view.instances) {
    expect(i.version).toBe("0.1.0");
    expect(Date.now() - Date.parse(i.last_heartbeat)).toBeLessThan(2000);
    expect(Date.parse(i.started)).toBeLessThanOrEqual(Date.parse(i.last_heartbeat));
    expect(typeof i.requests_per_second).toBe("number");
  }
});

test("the status page shows the fleet (a real headless Chromium renders it from GET /fleet)", async () => {
  const profile = tempDir("switchyard-chromium-");
  try {
    const chrome = Bun.spawn(
      ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", `--user-data-dir=${profile.path}`, "--virtual-time-budget=3000", "--dump-dom", `${fleet[0]!.admin}/status`],
      { stdout: "pipe", stderr: "pipe" },
    );
    const timer = setTimeout(() => chrome.kill(), 30_000);
    const dom = await new Response(chrome.stdout).text();
    clearTimeout(timer);
    expect(dom).toContain('<section id="fleet">'); // shown: this instance is part of a fleet
    expect(dom).toContain("fleet config v0");
    expect(dom).toMatch(/<td>machine-0 \(this\)<\/td><td>ams<\/td><td>0\.1\.0<\/td><td>v1 \/ fleet v0<\/td>/);
    expect(dom).toMatch(/<td>machine-1<\/td><td>iad<\/td>/);
    expect(dom).toMatch(/<td>machine-2<\/td><td>sin<\/td>/);
  } finally {
    profile.cleanup();
  }
}, 60_000);
