/**
 * The cache when requests overlap and when several processes share its file (as workers do):
 * invalidations reach only the URLs they name, a purge or invalidation is in force in every
 * process before it is answered, and an answer older than an invalidation is never stored. Two
 * proxies in this process on one file stand for two workers (each has its own memory tier and
 * its own view of the file); the e2e test below uses real `--workers 2`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ProxyProcess, spawnWorkers } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { freePort, type Gate, gate, rawUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

const dir = tempDir();
let up: Upstream;
const hits = new Map<string, number>();
/** The origin's state: bumped by every unsafe request. */
let version = 1;
const count = (path: string) => hits.get(path) ?? 0;
/** Slow requests (/slow…, or with x-slow) wait here at the upstream until the test lets them answer. */
let slow: Gate = gate();
slow.open();

let a: TestProxy;
let b: TestProxy;

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, count(path) + 1);
    if (req.method !== "GET" && req.method !== "HEAD") {
      version++;
      return new Response("changed");
    }
    // The answer reflects the origin as it was when the request arrived.
    const seen = version;
    if (path.startsWith("/slow") || req.headers.has("x-slow")) await slow.pass();
    if (path === "/age-list") return new Response("aged", { headers: { "cache-control": "max-age=3600", age: "7200, 0" } });
    if (path === "/age-lines") {
      const headers = new Headers({ "cache-control": "max-age=3600" });
      headers.append("age", "7200");
      headers.append("age", "0");
      return new Response("aged", { headers });
    }
    return new Response(`${path} v${seen}`, { headers: { "cache-control": "max-age=3600", date: new Date().toUTCString() } });
  });
  const config = {
    admin: { address: "127.0.0.1", port: 0 },
    caches: { main: { path: dir.file("shared.db") } },
    routes: [{ name: "cached", to: "up", cache: { name: "main" } }],
    clusters: { up: { endpoints: [up.origin] } },
  };
  a = await startProxy(config);
  b = await startProxy(config);
});
afterAll(async () => {
  await a.stop();
  await b.stop();
  up.stop(true);
  dir.cleanup();
});

/** Both proxies are asked for the same host, so that they share keys. */
const HOST = "shop.example";

async function get(proxy: TestProxy, path: string, extra: Record<string, string> = {}) {
  const res = await fetch(proxy.origin + path, { headers: { host: HOST, ...extra } });
  return { status: res.status, text: await res.text(), cache: res.headers.get("x-cache"), age: res.headers.get("age") };
}

async function untilHit(proxy: TestProxy, path: string) {
  return waitFor(`${path} a HIT`, async () => ((await get(proxy, path)).cache === "HIT" ? true : undefined));
}

test("an unsafe request to one URL does not stop a slow fill of another URL from being stored", async () => {
  slow = gate();
  const first = get(a, "/slow/a");
  await slow.arrived(1); // the fill is in flight
  const post = await fetch(`${a.origin}/other/x`, { method: "POST", body: "x" });
  expect(post.status).toBe(200);
  slow.open();
  expect((await first).cache).toBe("MISS");
  await untilHit(a, "/slow/a");
  expect(count("/slow/a")).toBe(1);
});

describe("two processes on one file", () => {
  test("an admin purge in one is in force in the other before it is answered", async () => {
    for (let round = 0; round < 3; round++) {
      const path = `/purged-${round}`;
      await get(a, path);
      await untilHit(a, path);
      await untilHit(b, path); // b's memory tier holds it now
      const before = count(path);
      version++;
      const purge = await fetch(`${a.running.admin!.url.origin}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "main", key: `http://${HOST}${path}` }) });
      expect(((await purge.json()) as { purged: number }).purged).toBe(1);
      // At once, through the other process: never the purged object.
      const after = await get(b, path);
      expect(after.cache).toBe("MISS");
      expect(after.text).toBe(`${path} v${version}`);
      expect(count(path)).toBe(before + 1);
    }
  });

  test("a POST through one is in force in the other before its answer is sent", async () => {
    for (let round = 0; round < 3; round++) {
      const path = `/posted-${round}`;
      await get(a, path);
      await untilHit(a, path);
      await untilHit(b, path);
      const post = await fetch(`${a.origin}${path}`, { method: "POST", body: "x", headers: { host: HOST } });
      expect(post.status).toBe(200);
      const after = await get(b, path);
      expect(after.cache).toBe("MISS");
      expect(after.text).toBe(`${path} v${version}`);
    }
  });

  test("a GET in flight in one while a POST through the other changes the origin: the older answer is never stored", async () => {
    let stale = 0;
    for (let round = 0; round < 12; round++) {
      const path = `/raced-${round}`;
      slow = gate();
      const inFlight = get(a, path, { "x-slow": "1" }); // the upstream answers when let, with the version it saw on arrival
      await slow.arrived(1);
      const post = await fetch(`${b.origin}${path}`, { method: "POST", body: "x", headers: { host: HOST } });
      expect(post.status).toBe(200);
      slow.open();
      const old = await inFlight;
      expect(old.cache).toBe("MISS");
      // The older answer went to its client, but must not be what anyone gets next. (A fill is
      // stored before the client's stream ends: a store that was going to happen has happened.)
      for (const p of [a, b]) if ((await get(p, path)).text === old.text) stale++;
    }
    expect(stale).toBe(0);
  }, 20_000);
});

test("Age: several values (a list, or repeated lines): the first counts, so a 7200 s old copy with max-age 3600 is stale", async () => {
  for (const path of ["/age-list", "/age-lines"]) {
    await get(a, path);
    const again = await get(a, path);
    expect(again.cache).not.toBe("HIT");
    expect(count(path)).toBe(2);
  }
});

test("an upstream status outside 200–599 is a 502 upstream_bad_status, never stored", async () => {
  let asked = 0;
  const odd = rawUpstream((socket) => {
    asked++;
    socket.write("HTTP/1.1 999 Odd\r\ncache-control: max-age=3600\r\ncontent-length: 2\r\n\r\nok");
  });
  const p = await startProxy({
    caches: { odd: { path: dir.file("odd.db") } },
    routes: [{ to: "odd", cache: { name: "odd" } }],
    clusters: { odd: { endpoints: [odd.origin] } },
  });
  try {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${p.origin}/x`);
      expect(res.status).toBe(502);
      const body = (await res.json()) as { error: string; message: string; request_id: string };
      expect(body.error).toBe("upstream_bad_status");
      expect(body.message).toContain("999");
      expect(body.request_id).toBeString();
    }
    expect(asked).toBe(2);
  } finally {
    await p.stop();
    odd.stop();
  }
});

describe("--workers 2", () => {
  let proxy: ProxyProcess & { cleanup(): void };
  let workersUp: Upstream;
  let generation = 1;
  const adminPort = freePort();
  beforeAll(async () => {
    workersUp = startUpstream(async (req) => {
      if (req.method === "POST") generation++;
      return new Response(`v${generation}`, { headers: { "cache-control": "max-age=3600" } });
    });
    proxy = await spawnWorkers({
      workers: 2,
      admin: { address: "127.0.0.1", port: adminPort },
      listeners: [{ address: "127.0.0.1", port: freePort() }],
      caches: { c: { path: dir.file("workers.db") } },
      routes: [{ to: "u", cache: { name: "c" } }],
      clusters: { u: { endpoints: [workersUp.origin] } },
      access_log: { enabled: false },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    workersUp.stop(true);
    proxy.cleanup();
  });

  /** 40 GETs on fresh connections (the kernel spreads them over both workers); their bodies. */
  const spread = () => Promise.all(Array.from({ length: 40 }, () => fetch(`${proxy.origin}/w`, { headers: { connection: "close" } }).then((r) => r.text())));

  test("after a purge is answered, and after a POST is answered, no worker serves the old object", async () => {
    await waitFor("both workers serving the cached copy", async () => (await spread()).every((t) => t === `v${generation}`) || undefined);
    generation++;
    const purge = await fetch(`http://127.0.0.1:${adminPort}/cache/purge`, { method: "POST", body: JSON.stringify({ cache: "c", prefix: "http://" }) });
    expect(((await purge.json()) as { purged: number }).purged).toBeGreaterThan(0);
    expect(new Set(await spread())).toEqual(new Set([`v${generation}`]));
    const post = await fetch(`${proxy.origin}/w`, { method: "POST", body: "x", headers: { connection: "close" } });
    expect(post.status).toBe(200);
    expect(new Set(await spread())).toEqual(new Set([`v${generation}`]));
  }, 30_000);
});
