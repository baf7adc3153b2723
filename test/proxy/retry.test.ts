/** Retries against real failing upstreams: they go elsewhere, resend the body, respect the method, time and budget limits. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { z } from "zod";
import type { RetryPolicySchema } from "../../src/proxy/retry-schema.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { waitFor } from "../helpers/tmp.ts";
import { stall, startUpstream, type Upstream } from "../helpers/upstream.ts";

let good: Upstream;
let bad: Upstream;
let hang: Upstream;
let throttle: Upstream;
let slowBad: Upstream;
let deadPort: number;
const hits = { good: 0, bad: 0, hang: 0, throttle: 0, slowBad: 0 };
const bodies: string[] = [];
let proxy: TestProxy;

beforeAll(async () => {
  good = startUpstream(async (req) => {
    hits.good++;
    if (req.body) bodies.push(await req.text());
    return new Response("good");
  });
  bad = startUpstream(async (req) => {
    hits.bad++;
    await req.arrayBuffer();
    return new Response("bad", { status: 503 });
  });
  hang = startUpstream(async (req) => {
    hits.hang++;
    await stall(req, 3000); // the delay is the scenario: far past the 200 ms per-try timeout
    return new Response("late");
  });
  throttle = startUpstream((req) => {
    hits.throttle++;
    const after = new URL(req.url).searchParams.get("after") ?? "1";
    return new Response("slow down", { status: 429, headers: { "retry-after": after } });
  });
  slowBad = startUpstream(async () => {
    hits.slowBad++;
    await Bun.sleep(100); // the delay is the scenario: tries stay in flight long enough for the budget to count them
    return new Response("bad", { status: 503 });
  });
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  deadPort = probe.port;
  probe.stop(true);
  const retry: z.input<typeof RetryPolicySchema> = { attempts: 3, retry_on: ["gateway-error", "429"], backoff: { base: "5ms", max: "20ms" } };
  proxy = await startProxy({
    routes: [
      { name: "flaky", match: { path: { prefix: "/flaky" } }, to: "flaky", retry },
      { name: "flaky-post", match: { path: { prefix: "/post-any" } }, to: "flaky", retry: { ...retry, non_idempotent: true, buffer_body: "1KiB" } },
      { name: "slow-client", match: { path: { prefix: "/slow-client" } }, to: "flaky", retry: { ...retry, non_idempotent: true }, timeouts: { idle: "300ms" } },
      { name: "no-retry", match: { path: { prefix: "/no-retry" } }, to: "flaky" },
      { name: "dead", match: { path: { prefix: "/dead" } }, to: "dead", retry },
      { name: "hang-only", match: { path: { prefix: "/hang-only" } }, to: "hang-only", retry: { ...retry, per_try_timeout: "200ms" }, timeouts: { request: "5s" } },
      { name: "hang", match: { path: { prefix: "/hang" } }, to: "hang", retry: { ...retry, per_try_timeout: "200ms" }, timeouts: { request: "5s" } },
      { name: "throttle", match: { path: { prefix: "/throttle" } }, to: "throttle", retry: { ...retry, attempts: 2, retry_after_max: "1500ms" } },
      { name: "storm", match: { path: { prefix: "/storm" } }, to: "storm", retry: { ...retry, attempts: 5 } },
      { name: "storm-unbudgeted", match: { path: { prefix: "/unbudgeted" } }, to: "unbudgeted", retry: { ...retry, attempts: 5 } },
    ],
    clusters: {
      flaky: { endpoints: [good.origin, bad.origin] },
      dead: { endpoints: [`127.0.0.1:${deadPort}`, good.origin] },
      hang: { endpoints: [hang.origin, good.origin] },
      "hang-only": { endpoints: [hang.origin] },
      throttle: { endpoints: [throttle.origin, good.origin] },

      unbudgeted: { endpoints: [slowBad.origin], retry_budget: { percent: 100, min_concurrency: 1000 }, limits: { max_retries: 1000 } },
      storm: { endpoints: [slowBad.origin], limits: { max_retries: 1000 } },
    },
  });
});

afterAll(async () => {
  await proxy.stop();
  for (const u of [good, bad, hang, throttle, slowBad]) u.stop(true);
});

const reset = () => {
  for (const k of Object.keys(hits) as (keyof typeof hits)[]) hits[k] = 0;
};

describe("retries", () => {
  test("a 503 is retried on the other endpoint: every request succeeds, attempts are reported and logged", async () => {
    reset();
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${proxy.origin}/flaky/${i}`, { headers: { "x-request-id": `flaky-${i}` } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("good");
      const attempts = Number(res.headers.get("x-switchyard-attempts"));
      expect([1, 2]).toContain(attempts);
      const line = await proxy.logOf(`flaky-${i}`);
      expect(line.attempts).toBe(attempts);
      if (attempts === 2) {
        const tries = line.tries as { endpoint: string; status: number }[];
        expect(tries.map((t) => t.status)).toEqual([503, 200]);
        expect(tries[0]!.endpoint).not.toBe(tries[1]!.endpoint);
      }
    }
    expect(hits.bad).toBeGreaterThan(0);
    expect(hits.good).toBe(10);
  });

  test("without a retry policy the 503 reaches the client", async () => {
    const statuses = new Set<number>();
    for (let i = 0; i < 6; i++) statuses.add((await fetch(`${proxy.origin}/no-retry`)).status);
    expect(statuses).toEqual(new Set([200, 503]));
  });

  test("connection refused is retried elsewhere", async () => {
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${proxy.origin}/dead`);
      expect(res.status).toBe(200);
    }
  });

  test("POST is not retried by default; with non_idempotent the kept body is sent again intact", async () => {
    const statuses = new Set<number>();
    for (let i = 0; i < 6; i++) statuses.add((await fetch(`${proxy.origin}/flaky`, { method: "POST", body: "once" })).status);
    expect(statuses.has(503)).toBe(true);
    bodies.length = 0;
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${proxy.origin}/post-any`, { method: "POST", body: `payload-${i}` });
      expect(res.status).toBe(200);
    }
    expect(bodies).toEqual(Array.from({ length: 6 }, (_, i) => `payload-${i}`));
  });

  test("a body larger than buffer_body is never retried (it cannot be sent twice)", async () => {
    const statuses = new Set<number>();
    for (let i = 0; i < 6; i++) statuses.add((await fetch(`${proxy.origin}/post-any`, { method: "POST", body: "x".repeat(4096) })).status);
    expect(statuses.has(503)).toBe(true);
  });

  test("a client too slow to send a body kept for retries gets 408 at the idle timeout", async () => {
    const started = performance.now();
    const res = await rawRequest(proxy.port, "POST /slow-client HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b", { quietMs: 200, timeoutMs: 3000 });
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body).error).toBe("client_timeout");
    expect(performance.now() - started).toBeLessThan(1500);
  });

  test("a hanging endpoint is abandoned at the per-try timeout and the retry succeeds elsewhere", async () => {
    reset();
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      const res = await fetch(`${proxy.origin}/hang`);
      expect(res.status).toBe(200);
      expect(performance.now() - started).toBeLessThan(1500);
    }
    expect(hits.hang).toBeGreaterThan(0);
  });

  test("every try hanging: 504 upstream_timeout that names the per-try timeout, not the route's (which is far from spent)", async () => {
    const started = performance.now();
    const res = await fetch(`${proxy.origin}/hang-only`);
    expect(res.status).toBe(504);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe("upstream_timeout");
    expect(body.message).toContain("per_try_timeout");
    expect(performance.now() - started).toBeLessThan(1500);
  });

  test("429 with a short Retry-After is waited for; a long one is passed to the client", async () => {
    reset();
    let waited = false;
    for (let i = 0; i < 4 && !waited; i++) {
      const started = performance.now();
      const res = await fetch(`${proxy.origin}/throttle?after=1`);
      expect(res.status).toBe(200);
      if (res.headers.get("x-switchyard-attempts") === "2") {
        expect(performance.now() - started).toBeGreaterThanOrEqual(950);
        waited = true;
      }
    }
    expect(waited).toBe(true);
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      const res = await fetch(`${proxy.origin}/throttle?after=30`);
      statuses.add(res.status);
      if (res.status === 429) {
        expect(res.headers.get("retry-after")).toBe("30");
        expect(performance.now() - started).toBeLessThan(500);
      }
    }
    expect(statuses.has(429)).toBe(true);
  }, 15_000);
});

describe("retry budget", () => {
  async function storm(path: string): Promise<number> {
    reset();
    const results = await Promise.all(Array.from({ length: 40 }, () => fetch(`${proxy.origin}${path}`).then((r) => r.status)));
    expect(results.every((s) => s === 503)).toBe(true);
    return hits.slowBad;
  }

  test("under a full outage the budget caps retries: far fewer tries than attempts × requests", async () => {
    const unbudgeted = await storm("/unbudgeted");
    const budgeted = await storm("/storm");
    console.log(`40 requests × 5 attempts to a dead cluster: ${unbudgeted} tries without a budget, ${budgeted} with the default budget (20%, min 10)`);
    expect(unbudgeted).toBe(200);
    expect(budgeted).toBeLessThan(100); // 40 first tries + about 10 retries in flight at a time
  }, 20_000);
});

describe("hedging", () => {
  test("a slow try is hedged to another endpoint after hedge_after; the first good answer wins, the other is cancelled", async () => {
    let slowCancelled = 0;
    const slowOne = startUpstream(async (req) => {
      req.signal.addEventListener("abort", () => slowCancelled++);
      await stall(req, 5000); // the delay is the scenario: a try far slower than hedge_after, cut short when cancelled
      return new Response("slow");
    });
    const fastOne = startUpstream(() => new Response("fast"));
    const p = await startProxy({
      routes: [{ name: "hedged", to: "pair", retry: { attempts: 2, hedge_after: "50ms" } }],
      clusters: { pair: { endpoints: [slowOne.origin, fastOne.origin] } },
    });
    try {
      for (let i = 0; i < 4; i++) {
        const started = performance.now();
        const res = await fetch(`${p.origin}/h`, { headers: { "x-request-id": `hedge-${i}` } });
        expect(await res.text()).toBe("fast");
        expect(performance.now() - started).toBeLessThan(2500); // hedged after 50 ms, not the slow try's 5 s
        if (res.headers.get("x-switchyard-attempts") === "2") {
          const line = await p.logOf(`hedge-${i}`);
          expect((line.tries as { error: string | null }[]).map((t) => t.error)).toContain("hedge_cancelled");
        }
      }
      await waitFor("slow tries cancelled", () => slowCancelled >= 2, 3000);
      // Every counter a try took is given back.
      const pair = p.running.state.runtime.current.clusters.get("pair")!;
      await waitFor("counters settle", () => pair.limits.connections === 0 && pair.limits.requests === 0);
      expect(pair.endpoints.map((e) => e.active)).toEqual([0, 0]);
      expect(pair.budget.retrying).toBe(0);
      expect(pair.budget.active).toBe(0);
    } finally {
      await p.stop();
      slowOne.stop(true);
      fastOne.stop(true);
    }
  });
});
