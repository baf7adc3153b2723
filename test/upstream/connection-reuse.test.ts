/**
 * Upstream connections are reused under load (limits.endpoint_in_flight): Bun's fetch keeps 64
 * idle sockets per process, so with more answers awaited at once it closes sockets as they come
 * back and opens new ones. Counted by a node:http upstream's connection events.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { freePort } from "../helpers/upstream.ts";

/** The proxy in a process of its own: Bun's idle-socket pool is per process, and this test's own client connections must not share it. */
async function proxyWith(limits: Record<string, number> = {}): Promise<ProxyProcess & { cleanup(): void }> {
  const file = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: freePort() }],
    routes: [{ to: "up" }],
    clusters: { up: { endpoints: [origin], ...(Object.keys(limits).length > 0 ? { limits } : {}) } },
    access_log: { enabled: false },
  });
  return Object.assign(await spawnProxy(file.file), { cleanup: file.cleanup });
}
type TestProxy = Awaited<ReturnType<typeof proxyWith>>;

let upstream: Server;
let connections = 0;
let origin = "";
/** Streams answered with their head at once and held open until the test lets them end. */
const streams: (() => void)[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.url === "/stream") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: open\n\n");
      streams.push(() => res.end("data: end\n\n"));
      return;
    }
    // A short exchange that takes a moment, so that many are awaited at once.
    setTimeout(() => res.end("x".repeat(1024)), 2); // the delay is the scenario
  });
  upstream.on("connection", () => connections++);
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(() => {
  for (const end of streams) end();
  upstream.close();
});

/** `total` GETs of `path` from `clients` concurrent clients; the statuses that were not 200. */
async function load(proxy: TestProxy, path: string, clients: number, total: number): Promise<number[]> {
  const bad: number[] = [];
  let next = 0;
  const client = async () => {
    while (next < total) {
      next++;
      const res = await fetch(proxy.origin + path);
      await res.arrayBuffer();
      if (res.status !== 200) bad.push(res.status);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return bad;
}

describe("defaults as shipped (endpoint_in_flight 64)", () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await proxyWith();
  });
  afterAll(async () => {
    await proxy.stop();
    proxy.cleanup();
  });

  test("200 concurrent clients, 3,000 requests: every answer 200, at most 2 × 64 upstream connections", async () => {
    await (await fetch(`${proxy.origin}/short`)).arrayBuffer(); // warm: no connect probes beside the requests (forward.ts guardConnect)
    const before = connections;
    expect(await load(proxy, "/short", 200, 3000)).toEqual([]);
    const opened = connections - before;
    console.log(`3,000 requests from 200 clients: ${opened} upstream connections`);
    expect(opened).toBeLessThanOrEqual(128);
  }, 30_000);

  test("a stream does not keep its slot: 100 streams open at once all get their head", async () => {
    const heads = await Promise.all(Array.from({ length: 100 }, async () => {
      const res = await fetch(`${proxy.origin}/stream`);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      reader.cancel().catch(() => {});
      return `${res.status} ${first}`;
    }));
    expect(new Set(heads)).toEqual(new Set(["200 data: open\n\n"]));
  }, 20_000);
});

test("without the cap (endpoint_in_flight: 0) the same load churns connections (Bun keeps 64 idle)", async () => {
  const proxy = await proxyWith({ endpoint_in_flight: 0 });
  try {
    await (await fetch(`${proxy.origin}/short`)).arrayBuffer();
    const before = connections;
    expect(await load(proxy, "/short", 200, 3000)).toEqual([]);
    const opened = connections - before;
    console.log(`uncapped: ${opened} upstream connections`);
    expect(opened).toBeGreaterThan(128);
  } finally {
    await proxy.stop();
    proxy.cleanup();
  }
}, 30_000);
