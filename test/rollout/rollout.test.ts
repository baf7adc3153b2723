/**
 * Rollouts through a real proxy and real upstreams (one proxy, one route per scenario: a process
 * runs one set of rollouts): a canary answering 5% errors is rolled back within its first step and
 * gets no more traffic; one 200 ms slower than stable fails a relative p99 check; a healthy one is
 * promoted through every step; sticky clients keep their side; the override header still forces
 * one; a reload keeps what it does not change.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import type { ConfigInput } from "../../src/config/schema.ts";
import { rollouts } from "../../src/rollout/registry.ts";
import type { RolloutView } from "../../src/rollout/view.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const SECRET = "jwt-secret-for-the-claimed-route-32b!";
let stable: Upstream;
let failing: Upstream;
let slow: Upstream;
let healthy: Upstream;
let proxy: TestProxy;
let admin = "";
const hits = { failing: 0 };

const route = (name: string, canary: string, rollout: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name, match: { path: { prefix: `/${name}` } }, rollout: { stable: "stable", canary, ...rollout }, ...extra,
});

const config = (forcedStep = "60s"): Omit<ConfigInput, "listeners"> => ({
  admin: { address: "127.0.0.1", port: 0 },
  routes: [
    route("errors", "failing", { steps: ["20%", "60%", "100%"], step_duration: "60s", min_requests: 60, analysis: { error_rate: { max: "1%" } }, sticky: false }),
    route("slow", "slow", { steps: ["50%", "100%"], step_duration: "60s", min_requests: 20, analysis: { p99: { max_over_stable: "100ms" } }, sticky: false }),
    route("healthy", "healthy", { steps: ["10%", "25%", "50%", "100%"], step_duration: "400ms", min_requests: 10, analysis: { error_rate: { max: "1%" }, p99: { max_over_stable: "100ms" } }, sticky: false }),
    route("sticky", "healthy", { steps: ["10%", "40%", "70%"], step_duration: "500ms", min_requests: 5 }),
    route("hashed", "healthy", { steps: ["10%", "40%", "70%"], step_duration: "500ms", min_requests: 5, sticky: { header: "x-user" } }),
    route("forced", "healthy", { steps: ["1%"], step_duration: forcedStep, min_requests: 100_000 }, { override: { header: "x-canary", value: "1", cluster: "healthy" } }),
    route("claimed", "healthy", { steps: ["50%"], step_duration: "60s", min_requests: 100_000, sticky: { claim: "org" } }, { filters: [{ type: "auth", providers: ["signed"] }] }),
  ],
  auth: { signed: { type: "jwt", algorithms: ["HS256"], keys: [{ secret: SECRET }] } },
  clusters: {
    stable: { endpoints: [stable.origin] },
    failing: { endpoints: [failing.origin] },
    slow: { endpoints: [slow.origin] },
    healthy: { endpoints: [healthy.origin] },
  },
});

beforeAll(async () => {
  stable = startUpstream(() => new Response("stable"));
  failing = startUpstream(() => new Response("canary", { status: ++hits.failing % 20 === 0 ? 500 : 200 }));
  slow = startUpstream(async () => {
    await Bun.sleep(200);
    return new Response("canary");
  });
  healthy = startUpstream(() => new Response("canary"));
  proxy = await startProxy(config());
  admin = proxy.running.admin!.url.href;
});
afterAll(async () => {
  await proxy.stop();
  for (const u of [stable, failing, slow, healthy]) u.stop(true);
});

async function rollout(name: string): Promise<RolloutView> {
  const { rollouts: all } = (await (await fetch(`${admin}rollouts`)).json()) as { rollouts: RolloutView[] };
  return all.find((r) => r.route === name)!;
}

/**
 * Sends `concurrency` requests at a time to /name until `done`, for `rounds` rounds at most and
 * within 20 s; returns the answers' bodies.
 */
async function drive(name: string, done: () => Promise<boolean>, rounds = 200, concurrency = 20): Promise<string[]> {
  const bodies: string[] = [];
  const deadline = performance.now() + 20_000;
  for (let i = 0; i < rounds && performance.now() < deadline && !(await done()); i++) {
    bodies.push(...(await Promise.all(Array.from({ length: concurrency }, () => fetch(`${proxy.origin}/${name}`).then((r) => r.text())))));
  }
  return bodies;
}

describe("analysis", () => {
  test("a canary that answers 5% errors is rolled back within its first step, with the figures; its traffic goes to 0", async () => {
    await drive("errors", async () => (await rollout("errors")).state !== "progressing", 100);
    const r = await rollout("errors");
    expect(r).toMatchObject({ state: "rolled_back", step: 1, weight: 0 });
    expect(r.history.map((h) => h.event)).toEqual(["started", "rolled_back"]);
    expect(r.reason).toMatch(/^canary error rate \d+(\.\d+)?% > 1%$/);
    expect(r.failed).toEqual([expect.objectContaining({ check: "error_rate", limit: 0.01, passed: false })]);
    expect(r.failed![0]!.value).toBeGreaterThan(0.01);
    expect(r.figures.canary.requests).toBeGreaterThanOrEqual(60);
    expect(r.figures.canary.errors).toBeGreaterThanOrEqual(3);
    const before = hits.failing;
    const after = await drive("errors", async () => false, 10);
    expect(new Set(after)).toEqual(new Set(["stable"]));
    expect(hits.failing).toBe(before);
  });

  test("a canary 200 ms slower than stable fails the relative p99 check", async () => {
    await drive("slow", async () => (await rollout("slow")).state !== "progressing", 50);
    const r = await rollout("slow");
    expect(r).toMatchObject({ state: "rolled_back", weight: 0 });
    expect(r.failed!.map((c) => c.check)).toEqual(["p99_over_stable"]);
    expect(r.failed![0]!.value).toBeGreaterThan(100);
    expect(r.figures.canary.p99_ms).toBeGreaterThan(200);
    expect(r.figures.stable.p99_ms).toBeLessThan(100);
    expect(r.reason).toMatch(/^canary p99 \d+(\.\d+)? ms above stable's > 100 ms$/);
  });

  test("a healthy canary is promoted through every step, then gets all traffic", async () => {
    await drive("healthy", async () => {
      await Bun.sleep(10); // steps are timed: a few rounds per look, not thousands
      return (await rollout("healthy")).state !== "progressing";
    }, 1000, 10);
    const r = await rollout("healthy");
    expect(r).toMatchObject({ state: "promoted", weight: 100, step: 4 });
    // (Before this test sent anything, the first step was extended: no canary requests, no verdict.)
    const passed = r.history.filter((h) => h.event !== "extended");
    expect(passed.map((h) => [h.event, h.weight])).toEqual([["started", 10], ["advanced", 25], ["advanced", 50], ["advanced", 100], ["promoted", 100]]);
    expect(r.history.filter((h) => h.event === "extended").every((h) => h.step === 0 && h.figures!.canary.requests < 10)).toBe(true);
    // Each step passed with at least min_requests canary requests.
    for (const h of passed.slice(1)) expect(h.figures!.canary.requests).toBeGreaterThanOrEqual(10);
    const after = await drive("healthy", async () => false, 5);
    expect(new Set(after)).toEqual(new Set(["canary"]));
  });
});

describe("stickiness", () => {
  test("cookie: a client keeps its side for the rollout's life, whatever the weights do", async () => {
    // New clients keep arriving (a side is chosen once per client: the steps' weights apply to newcomers).
    const clients: { cookie: string; sides: Set<string> }[] = [];
    const start = await rollout("sticky");
    let setCookies = 0;
    const deadline = performance.now() + 20_000;
    for (let round = 0; round < 2000 && performance.now() < deadline; round++) {
      const handle = rollouts.get("sticky")!;
      if (handle.state.phase !== "progressing" || handle.state.step === 2) break;
      if (clients.length < 300) for (let i = 0; i < 3; i++) clients.push({ cookie: "", sides: new Set() });
      await Bun.sleep(10);
      await Promise.all(clients.map(async (c) => {
        const res = await fetch(`${proxy.origin}/sticky`, { headers: c.cookie ? { cookie: `other=1; ${c.cookie}` } : {} });
        const set = res.headers.get("set-cookie");
        if (set !== null) {
          setCookies++;
          expect(set).toMatch(new RegExp(`^sy-rollout-sticky=${start.rollout_id.replace(".", "\\.")}\\.[cs]; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax$`));
          c.cookie = set.split(";")[0]!;
        }
        c.sides.add(await res.text());
      }));
    }
    const r = await rollout("sticky");
    expect(r.state).toBe("progressing");
    expect(r.step).toBe(3); // the weight went 10% → 40% → 70% meanwhile
    expect(setCookies).toBe(clients.length); // once per client
    for (const c of clients) expect(c.sides.size).toBe(1);
    const canary = clients.filter((c) => c.sides.has("canary")).length;
    expect(canary).toBeGreaterThan(0);
    expect(canary).toBeLessThan(clients.length);
  });

  test("header hash: within a step a client's side is fixed; as the weight grows it may join the canary, never leave it", async () => {
    const users = Array.from({ length: 40 }, (_, i) => ({ id: `user-${i}`, seen: [] as { epoch: number; side: string }[] }));
    const deadline = performance.now() + 20_000;
    for (let round = 0; round < 2000 && performance.now() < deadline; round++) {
      const handle = rollouts.get("hashed")!;
      if (handle.state.phase !== "progressing" || handle.state.step === 2) break;
      await Bun.sleep(10);
      await Promise.all(users.map(async (u) => {
        const epoch = handle.state.epoch;
        const side = await (await fetch(`${proxy.origin}/hashed`, { headers: { "x-user": u.id } })).text();
        if (handle.state.epoch === epoch) u.seen.push({ epoch, side });
      }));
    }
    expect(rollouts.get("hashed")!.state.step).toBe(2);
    for (const u of users) {
      const byEpoch = new Map<number, Set<string>>();
      for (const s of u.seen) byEpoch.set(s.epoch, (byEpoch.get(s.epoch) ?? new Set()).add(s.side));
      for (const sides of byEpoch.values()) expect(sides.size).toBe(1);
      const firstCanary = u.seen.findIndex((s) => s.side === "canary");
      if (firstCanary !== -1) expect(u.seen.slice(firstCanary).every((s) => s.side === "canary")).toBe(true);
    }
    const canaryAtEnd = users.filter((u) => u.seen.at(-1)?.side === "canary").length;
    expect(canaryAtEnd).toBeGreaterThan(users.filter((u) => u.seen[0]?.side === "canary").length);
  });

  test("token claim: the side follows a verified claim (chosen after the auth filter), the same for every request of that caller", async () => {
    const token = (claims: Record<string, string>) => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h").sign(new TextEncoder().encode(SECRET));
    const orgs = await Promise.all(Array.from({ length: 20 }, async (_, i) => ({ token: await token({ sub: `u${i}`, org: `org-${i}` }), sides: new Set<string>() })));
    for (let round = 0; round < 5; round++) {
      await Promise.all(orgs.map(async (o) => o.sides.add(await (await fetch(`${proxy.origin}/claimed`, { headers: { authorization: `Bearer ${o.token}` } })).text())));
    }
    for (const o of orgs) expect(o.sides.size).toBe(1);
    const onCanary = orgs.filter((o) => o.sides.has("canary")).length;
    expect(onCanary).toBeGreaterThan(0);
    expect(onCanary).toBeLessThan(orgs.length);
    // Without the claim the request is weighted like any other; without a token the filter answers.
    expect((await fetch(`${proxy.origin}/claimed`, { headers: { authorization: `Bearer ${await token({ sub: "x" })}` } })).status).toBe(200);
    expect((await fetch(`${proxy.origin}/claimed`)).status).toBe(401);
  });

  test("the override header still forces the canary; without it the 1% step sends nearly all to stable", async () => {
    const forced = await Promise.all(Array.from({ length: 20 }, () => fetch(`${proxy.origin}/forced`, { headers: { "x-canary": "1" } })));
    expect(await Promise.all(forced.map((r) => r.text()))).toEqual(Array(20).fill("canary"));
    expect(forced.every((r) => r.headers.get("set-cookie") === null)).toBe(true);
    const plain = await Promise.all(Array.from({ length: 40 }, () => fetch(`${proxy.origin}/forced`).then((r) => r.text())));
    expect(plain.filter((b) => b === "stable").length).toBeGreaterThanOrEqual(35);
  });
});

describe("operations", () => {
  test("pause, resume, promote and abort by the admin API; what does not apply is a 409", async () => {
    const post = (action: string) => fetch(`${admin}rollouts/forced/${action}`, { method: "POST" });
    expect((await (await post("pause")).json()) as RolloutView).toMatchObject({ state: "paused", weight: 1 });
    const conflict = await post("pause");
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toEqual({ error: "conflict", message: "cannot pause a rollout that is paused" });
    expect(((await (await post("resume")).json()) as RolloutView).state).toBe("progressing");
    const unknown = await fetch(`${admin}rollouts/nope/pause`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(((await (await fetch(`${admin}rollouts/forced/fly`, { method: "POST" })).json()) as { message: string }).message).toBe('no action "fly" (pause, resume, promote, abort, restart)');
    // The route explainer names both sides.
    const explained = (await (await fetch(`${admin}route?url=http://x/forced`)).json()) as { route: string; clusters: string[] };
    expect(explained).toMatchObject({ route: "forced", clusters: ["stable", "healthy"] });
    const metrics = await (await fetch(`${admin}metrics`)).text();
    expect(metrics).toContain('switchyard_rollout_transitions_total{route="forced",event="paused"} 1');
    expect(metrics).toContain('switchyard_rollout_state{route="errors",state="rolled_back"} 1');
    expect(metrics).toContain('switchyard_rollout_weight{route="healthy"} 100');
    const check = Bun.spawn(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(metrics), stdout: "pipe", stderr: "pipe" });
    expect(await check.exited).toBe(0);
  });

  test("a reload that keeps a rollout's definition keeps its state; one that changes it starts it anew", async () => {
    const before = new Map((await Promise.all(["errors", "healthy", "sticky", "forced"].map(rollout))).map((r) => [r.route, r]));
    proxy.writeConfig({ listeners: [{ address: "127.0.0.1", port: proxy.port, trusted_proxies: ["127.0.0.1"] }], ...config("90s") });
    expect(await proxy.running.reload()).toBe(true);
    const errors = await rollout("errors");
    expect(errors).toMatchObject({ state: "rolled_back", rollout_id: before.get("errors")!.rollout_id, epoch: before.get("errors")!.epoch });
    expect((await rollout("healthy")).state).toBe("promoted");
    expect((await rollout("sticky")).rollout_id).toBe(before.get("sticky")!.rollout_id);
    const forced = await waitFor("the changed rollout restarted", async () => {
      const r = await rollout("forced");
      return r.rollout_id !== before.get("forced")!.rollout_id ? r : undefined;
    });
    expect(forced).toMatchObject({ state: "progressing", step: 1, epoch: 0, step_duration_ms: 90_000 });
    expect(forced.history.map((h) => h.event)).toEqual(["started"]);
  });
});
