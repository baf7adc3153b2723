/** Circuit breaker (pure, with a clock) and cluster limits (through the proxy, against slow and failing upstreams). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CircuitBreaker } from "../../src/upstream/breaker.ts";
import { BreakerSchema } from "../../src/upstream/limits-schema.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { type Gate, gate, startUpstream, type Upstream } from "../helpers/upstream.ts";

describe("circuit breaker states", () => {
  function breaker(raw: Record<string, unknown> = {}) {
    let now = 0;
    const b = new CircuitBreaker(BreakerSchema.parse({ window: "10s", minimum_requests: 10, failure_percent: 50, open_for: "5s", half_open_probes: 2, ...raw }), () => now);
    return { b, advance: (ms: number) => (now += ms) };
  }

  test("stays closed below the minimum request count, opens at the failure percentage", () => {
    const { b } = breaker();
    for (let i = 0; i < 9; i++) b.record(true, false);
    expect(b.state).toBe("closed");
    b.record(true, false);
    expect(b.state).toBe("open");
    expect(b.admit()).toBe("no");
  });

  test("failures outside the window are forgotten", () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 6; i++) b.record(true, false);
    advance(11_000);
    for (let i = 0; i < 6; i++) b.record(false, false);
    for (let i = 0; i < 4; i++) b.record(true, false);
    expect(b.state).toBe("closed"); // 4 of 10 in the window
  });

  test("open → half-open after open_for → closed when every probe succeeds", () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 10; i++) b.record(true, false);
    advance(4_999);
    expect(b.admit()).toBe("no");
    advance(2);
    expect(b.admit()).toBe("probe");
    expect(b.admit()).toBe("probe");
    expect(b.admit()).toBe("no"); // only half_open_probes at a time
    b.record(false, true);
    expect(b.state).toBe("half_open");
    b.record(false, true);
    expect(b.state).toBe("closed");
    expect(b.admit()).toBe("yes");
  });

  test("a failed probe opens it again", () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 10; i++) b.record(true, false);
    advance(5_001);
    expect(b.admit()).toBe("probe");
    b.record(true, true);
    expect(b.state).toBe("open");
    expect(b.admit()).toBe("no");
  });
});

describe("through the proxy", () => {
  let slow: Upstream;
  let failing: Upstream;
  let proxy: TestProxy;
  let failingHits = 0;
  /** Where the slow upstream holds its requests; each test that needs them held makes a new one. */
  let held: Gate = gate();

  beforeAll(async () => {
    held.open();
    slow = startUpstream(async () => {
      await held.pass();
      return new Response("done");
    });
    failing = startUpstream(() => {
      failingHits++;
      return new Response("down", { status: 500 });
    });
    proxy = await startProxy({
      routes: [
        { name: "reqs", match: { path: { prefix: "/reqs" } }, to: "reqs" },
        { name: "conns", match: { path: { prefix: "/conns" } }, to: "conns" },
        { name: "breaker", match: { path: { prefix: "/breaker" } }, to: "breaker" },
      ],
      clusters: {
        reqs: { endpoints: [slow.origin], limits: { max_requests: 2 } },
        conns: { endpoints: [slow.origin], limits: { max_connections: 1, max_pending: 1 } },
        breaker: { endpoints: [failing.origin], breaker: { minimum_requests: 5, failure_percent: 50, open_for: "300ms", half_open_probes: 1 } },
      },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    slow.stop(true);
    failing.stop(true);
  });

  const limits = (name: string) => proxy.running.state.runtime.current.clusters.get(name)!.limits;

  test("over max_requests: fail fast with 503 and x-switchyard-overloaded", async () => {
    held = gate();
    const inflight = [fetch(`${proxy.origin}/reqs`), fetch(`${proxy.origin}/reqs`)];
    await held.arrived(2); // both admitted and at the upstream
    const extra = await fetch(`${proxy.origin}/reqs`);
    expect(extra.status).toBe(503);
    expect(extra.headers.get("x-switchyard-overloaded")).toBe("true");
    expect(((await extra.json()) as { error: string }).error).toBe("overloaded");
    held.open();
    for (const r of await Promise.all(inflight)) expect(r.status).toBe(200);
    expect((await fetch(`${proxy.origin}/reqs`)).status).toBe(200); // capacity is given back
  });

  test("max_connections with max_pending: one in flight, one waits its turn, the next is refused", async () => {
    held = gate();
    const first = fetch(`${proxy.origin}/conns`);
    await held.arrived(1); // the one connection is in use
    const second = fetch(`${proxy.origin}/conns`);
    await waitFor("the second waiting its turn", () => limits("conns").pending === 1);
    const third = await fetch(`${proxy.origin}/conns`);
    expect(third.status).toBe(503);
    expect(third.headers.get("x-switchyard-overloaded")).toBe("true");
    held.open();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
  });

  test("the breaker opens on errors and then refuses without touching the upstream; a good probe closes it", async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`${proxy.origin}/breaker`)).status).toBe(500);
    const hitsWhenOpen = failingHits;
    const refused = await fetch(`${proxy.origin}/breaker`);
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: string }).error).toBe("circuit_open");
    expect(refused.headers.get("x-switchyard-overloaded")).toBe("true");
    expect(failingHits).toBe(hitsWhenOpen);
    // Refused until open_for (300 ms) has passed; then half-open: one probe goes through; it fails, so the breaker opens again.
    const probe = await waitFor("a half-open probe", async () => {
      const res = await fetch(`${proxy.origin}/breaker`);
      return res.status === 503 ? undefined : res;
    }, 1500);
    expect(probe.status).toBe(500);
    expect(failingHits).toBe(hitsWhenOpen + 1);
    expect((await fetch(`${proxy.origin}/breaker`)).status).toBe(503);
  });
});
