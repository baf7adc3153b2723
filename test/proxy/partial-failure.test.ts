/**
 * Partial failures found from outside: an answer cut after its headers, a per-try timeout on a
 * request that will not be retried, failover with the default panic threshold, and the README's
 * retry example under a resetting endpoint at concurrency.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { rawUpstream, stall, startUpstream, type Upstream } from "../helpers/upstream.ts";

/** An upstream that sends a 200 with `Content-Length: declared`, then `sent` bytes, then closes. */
function cuttingUpstream(declared: number, sent: number) {
  let requests = 0;
  const raw = rawUpstream((socket, data) => {
    if (!data.includes("\r\n\r\n")) return;
    requests++;
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${declared}\r\ncontent-type: text/plain\r\n\r\n${"x".repeat(sent)}`);
    setTimeout(() => socket.end(), 5); // the delay is the scenario: the head and part of the body first, the close after
  });
  return Object.assign(raw, { requests: () => requests });
}

/** An upstream that closes every connection as soon as a request arrives (a reset before any answer). */
function resettingUpstream() {
  return rawUpstream((socket) => socket.terminate());
}

describe("an answer cut after its headers", () => {
  let good: Upstream[];
  let small: ReturnType<typeof cuttingUpstream>;
  let large: ReturnType<typeof cuttingUpstream>;
  let proxy: TestProxy;
  const outlier = { consecutive_gateway_failure: 5, interval: "10s", base_ejection_time: "30s", max_ejection_percent: 50 };

  beforeAll(async () => {
    good = [startUpstream(() => new Response("y".repeat(32768))), startUpstream(() => new Response("y".repeat(32768)))];
    small = cuttingUpstream(32768, 2000);
    large = cuttingUpstream(1 << 20, 100_000);
    proxy = await startProxy({
      admin: { address: "127.0.0.1", port: 0 },
      routes: [
        // The README's retry example.
        { name: "retried", match: { path: { prefix: "/retried" } }, to: "three", retry: { attempts: 3, retry_on: ["connect-failure", "reset", "gateway-error"], per_try_timeout: "2s" } },
        { name: "plain", match: { path: { prefix: "/plain" } }, to: "cut-only" },
        { name: "large", match: { path: { prefix: "/large" } }, to: "cut-large" },
      ],
      clusters: {
        three: { endpoints: [good[0]!.origin, good[1]!.origin, small.origin], balancer: { type: "round_robin" }, outlier },
        "cut-only": { endpoints: [small.origin], outlier },
        "cut-large": { endpoints: [large.origin], outlier },
      },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    for (const u of good) u.stop(true);
    small.stop();
    large.stop();
  });

  const clusters = () => proxy.running.state.runtime.current.clusters;

  test("a buffered answer cut short is retried on another endpoint, and its endpoint ejected", async () => {
    const before = small.requests();
    for (let i = 0; i < 30; i++) {
      const res = await fetch(`${proxy.origin}/retried/${i}`);
      expect(res.status).toBe(200);
      expect((await res.text()).length).toBe(32768);
    }
    // Round robin sent it a third of the first tries until five cut bodies in a row ejected it.
    expect(small.requests() - before).toBe(5);
    const three = clusters().get("three")!;
    expect(three.available().map((e) => e.port)).not.toContain(small.port);
    // The admin API says so: not healthy (it passes no checks because there are none, but it is ejected).
    const listed = (await (await fetch(`${proxy.running.admin!.url.origin}/clusters`)).json()) as { clusters: { name: string; endpoints: { address: string; healthy: boolean; ejections: number; ejected_for_ms: number }[] }[] };
    const endpoint = listed.clusters.find((c) => c.name === "three")!.endpoints.find((e) => e.address === `127.0.0.1:${small.port}`)!;
    expect(endpoint.healthy).toBe(false);
    expect(endpoint.ejections).toBe(1);
    expect(endpoint.ejected_for_ms).toBeGreaterThan(20_000);
  });

  test("without a retry: a clean 502 that says the body was cut, and the endpoint counted as failing", async () => {
    const res = await fetch(`${proxy.origin}/plain`);
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: string; message: string; request_id: string };
    expect(body.error).toBe("upstream_reset");
    expect(body.message).toBe("the upstream closed the connection in the middle of the response body (Content-Length: 32768)");
    expect(body.request_id).toBeString();
    for (let i = 0; i < 4; i++) await (await fetch(`${proxy.origin}/plain`)).arrayBuffer();
    const h = clusters().get("cut-only")!.endpoints[0]!.health;
    expect(h.ejections).toBe(1);
  });

  test("a streamed answer cut short fails the client's stream (a reset) and counts against its endpoint", async () => {
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${proxy.origin}/large`);
      expect(res.status).toBe(200);
      expect(await res.arrayBuffer().then(() => "whole", () => "cut")).toBe("cut");
    }
    await waitFor("the cutting endpoint ejected", () => clusters().get("cut-large")!.endpoints[0]!.health.ejections === 1 || undefined);
  });
});

describe("per_try_timeout", () => {
  let silent: Upstream;
  let proxy: TestProxy;
  beforeAll(async () => {
    silent = startUpstream(async (req) => {
      await stall(req, 5000); // the delay is the scenario: far past the 300 ms per-try timeout
      return new Response("late");
    });
    proxy = await startProxy({
      routes: [{ to: "silent", timeouts: { request: "10s" }, retry: { attempts: 2, per_try_timeout: "300ms" } }],
      clusters: { silent: { endpoints: [silent.origin] } },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    silent.stop(true);
  });

  test("bounds the only try of a request that will not be retried (a POST)", async () => {
    const started = performance.now();
    const res = await fetch(`${proxy.origin}/x`, { method: "POST", body: "data" });
    const took = performance.now() - started;
    expect(res.status).toBe(504);
    const body = (await res.json()) as { message: string };
    expect(body.message).toContain("per_try_timeout");
    expect(took).toBeLessThan(3000); // the route's 10 s never came into it
    expect(res.headers.get("x-switchyard-attempts")).toBe("1");
  });
});

describe("failover with the default panic threshold", () => {
  let backup: Upstream;
  let deadPort: number;
  let proxy: TestProxy;
  beforeAll(async () => {
    backup = startUpstream(() => new Response("backup"));
    const gone = startUpstream(() => new Response("never"));
    deadPort = gone.port!;
    gone.stop(true);
    proxy = await startProxy({
      routes: [
        { name: "checked", match: { path: { prefix: "/checked" } }, to: "dead-checked", failover: ["backup"] },
        { name: "passive", match: { path: { prefix: "/passive" } }, to: "dead-passive", failover: ["backup"] },
        { name: "all-down", match: { path: { prefix: "/all" } }, to: "dead-passive", failover: ["dead-checked"] },
      ],
      clusters: {
        backup: { endpoints: [backup.origin] },
        // Defaults as shipped: no panic_threshold set (50%).
        "dead-checked": { endpoints: [`http://127.0.0.1:${deadPort}`], health_check: { path: "/health", interval: "50ms", jitter: "0", unhealthy_threshold: 1 } },
        "dead-passive": { endpoints: [`http://127.0.0.1:${deadPort}`], outlier: { consecutive_gateway_failure: 3 } },
      },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    backup.stop(true);
  });

  test("a cluster whose active checks fail hands its traffic to the next in the chain", async () => {
    await waitFor("the dead endpoint marked unhealthy", () => proxy.running.state.runtime.current.clusters.get("dead-checked")!.healthyCount() === 0 || undefined);
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${proxy.origin}/checked`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("backup");
    }
  });

  test("a cluster whose only endpoint was ejected by outlier detection fails over too", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await fetch(`${proxy.origin}/passive`).then(async (r) => (await r.arrayBuffer(), r.status))));
    // Three refused connections eject it; every request after goes to the backup.
    expect(statuses.slice(0, 3)).toEqual([502, 502, 502]);
    expect(statuses.slice(3)).toEqual([200, 200, 200]);
  });

  test("when no cluster in the chain is healthy, the chosen one serves in panic mode", async () => {
    const res = await fetch(`${proxy.origin}/all`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toBe("upstream_connect_refused");
  });
});

describe("the README's retry example, one endpoint of three resetting, 20 concurrent clients", () => {
  let good: Upstream[];
  let bad: ReturnType<typeof resettingUpstream>;
  let proxy: TestProxy;
  // The README's example values; limits and the retry budget as shipped.
  const outlier = { consecutive_5xx: 5, consecutive_gateway_failure: 5, interval: "10s", base_ejection_time: "30s", max_ejection_percent: 10 };
  beforeAll(async () => {
    good = [startUpstream(() => new Response("ok")), startUpstream(() => new Response("ok"))];
    bad = resettingUpstream();
    const endpoints = [good[0]!.origin, good[1]!.origin, bad.origin];
    const retry = { attempts: 3, retry_on: ["connect-failure", "reset", "gateway-error"] as const, per_try_timeout: "2s", backoff: { base: "25ms", max: "250ms" } };
    proxy = await startProxy({
      routes: [
        { match: { path: { prefix: "/with-outlier" } }, to: "ejecting", retry: { ...retry, retry_on: [...retry.retry_on] } },
      ],
      clusters: { ejecting: { endpoints, outlier } },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    for (const u of good) u.stop(true);
    bad.stop();
  });

  /** `total` GETs from 20 clients at once; the answers that were not 200. */
  async function load(path: string, total: number): Promise<string[]> {
    const failed: string[] = [];
    let next = 0;
    const client = async () => {
      while (next < total) {
        next++;
        const res = await fetch(proxy.origin + path);
        const text = await res.text();
        if (res.status !== 200) failed.push(`${res.status} after ${res.headers.get("x-switchyard-attempts")} tries: ${text}`);
      }
    };
    await Promise.all(Array.from({ length: 20 }, client));
    return failed;
  }

  test("with its outlier detection: 2,000 requests, none fails", async () => {
    expect(await load("/with-outlier", 2000)).toEqual([]);
  }, 30_000);
});
