/** The HTTP cache through the proxy, against a real upstream and a real libSQL file. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: TestProxy;
const hits = new Map<string, number>();
let version = 1;
let failing = false;
const dir = tempDir();
const dbPath = dir.file("cache.db");

const count = (path: string) => hits.get(path) ?? 0;

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    hits.set(path, count(path) + 1);
    if (req.method !== "GET" && req.method !== "HEAD") return new Response("changed", { status: 200 });
    if (failing && path.startsWith("/sie")) return new Response("down", { status: 503 });
    const etag = `"v${version}"`;
    if (path === "/validated" && req.headers.get("if-none-match") === etag) return new Response(null, { status: 304, headers: { etag, "cache-control": "max-age=0, must-revalidate", "x-revalidated": "yes" } });
    const headers: Record<string, string> = { "content-type": "text/plain", date: new Date().toUTCString() };
    if (path === "/fresh") headers["cache-control"] = "max-age=60";
    if (path === "/tagged") Object.assign(headers, { "cache-control": "max-age=60", "surrogate-key": "product-7 catalog" });
    if (path === "/vary") Object.assign(headers, { "cache-control": "max-age=60", vary: "accept-language" });
    if (path === "/nostore") headers["cache-control"] = "no-store";
    if (path === "/private") headers["cache-control"] = "private, max-age=60";
    if (path === "/cookie") Object.assign(headers, { "cache-control": "max-age=60", "set-cookie": "sid=1" });
    if (path === "/validated") Object.assign(headers, { "cache-control": "max-age=0, must-revalidate", etag });
    if (path === "/big") headers["cache-control"] = "max-age=60";
    if (path.startsWith("/sie")) headers["cache-control"] = "max-age=0, stale-if-error=60";
    if (path === "/swr") headers["cache-control"] = "max-age=0, stale-while-revalidate=60";
    const body = path === "/big" ? "b".repeat(200_000) : `${path} v${version} #${count(path)} ${url.search}`;
    return new Response(body, { headers });
  });
  proxy = await startProxy({
    caches: { main: { path: dbPath, max_object: "100KiB" } },
    routes: [{ name: "cached", match: { path: { prefix: "/" } }, to: "up", cache: { name: "main", key: { ignore_query: ["utm_source"] } } }],
    clusters: { up: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  dir.cleanup();
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(proxy.origin + path, { headers });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/**
 * A fill is stored before the client's stream ends (cache.ts storeWhileStreaming): once a test has
 * read an answer whole, whatever was going to be stored is, and nothing needs to wait for it. Where
 * a test just wants a HIT, it still asks until it gets one.
 */
async function untilHit(path: string, headers: Record<string, string> = {}) {
  return waitFor(`${path} cached`, async () => {
    const r = await get(path, headers);
    return r.headers.get("x-cache") === "HIT" ? r : undefined;
  });
}

describe("storing and serving", () => {
  test("MISS, then HIT with the same body and an Age; the upstream is asked once", async () => {
    const first = await get("/fresh");
    expect(first.headers.get("x-cache")).toBe("MISS");
    const second = await untilHit("/fresh");
    expect(second.text).toBe(first.text);
    expect(Number(second.headers.get("age"))).toBeGreaterThanOrEqual(0);
    expect(count("/fresh")).toBe(1);
    const line = (await proxy.logLines()).filter((l) => l.path === "/fresh").at(-1)!;
    expect(line.cache).toBe("HIT");
  });

  test("the key sorts the query and leaves ignored parameters out", async () => {
    await get("/fresh?b=2&a=1");
    await untilHit("/fresh?a=1&b=2&utm_source=mail");
  });

  test("no-store, private and Set-Cookie responses are not stored", async () => {
    for (const path of ["/nostore", "/private", "/cookie"]) {
      await get(path); // read whole: a store would have happened by now
      expect((await get(path)).headers.get("x-cache")).toBe("MISS");
      expect(count(path)).toBe(2);
    }
  });

  test("Vary: each Accept-Language gets its own variant", async () => {
    await get("/vary", { "accept-language": "fr" });
    const fr = await untilHit("/vary", { "accept-language": "fr" });
    const de = await get("/vary", { "accept-language": "de" });
    expect(de.headers.get("x-cache")).toBe("MISS");
    expect(de.text).not.toBe(fr.text);
  });

  test("request Cache-Control: no-cache goes upstream; only-if-cached with nothing stored is 504", async () => {
    await untilHit("/fresh");
    const before = count("/fresh");
    const r = await get("/fresh", { "cache-control": "no-cache" });
    expect(count("/fresh")).toBe(before + 1);
    expect(r.headers.get("x-cache")).not.toBe("HIT");
    expect((await get("/never-seen", { "cache-control": "only-if-cached" })).status).toBe(504);
  });

  test("a conditional request satisfied by the stored response gets 304 from the cache", async () => {
    await get("/validated");
    const etag = (await get("/validated")).headers.get("etag")!;
    const r = await fetch(proxy.origin + "/validated", { headers: { "if-none-match": etag } });
    expect(r.status).toBe(304);
  });

  test("revalidation: a stale entry with an ETag is revalidated; the 304 refreshes it (REVALIDATED)", async () => {
    await get("/validated"); // stored (and stale at once: max-age=0)
    const before = count("/validated");
    const r = await get("/validated");
    expect(r.headers.get("x-cache")).toBe("REVALIDATED");
    expect(r.headers.get("x-revalidated")).toBe("yes");
    expect(count("/validated")).toBe(before + 1);
    expect(r.text).toContain("/validated v1");
  });

  test("a body over max_object streams through whole and is not stored", async () => {
    const r = await get("/big");
    expect(r.text.length).toBe(200_000); // read whole: a store would have happened by now
    expect((await get("/big")).headers.get("x-cache")).toBe("MISS");
  });
});

describe("stale answers", () => {
  test("stale-if-error: when the upstream fails, the stale copy is served", async () => {
    failing = false;
    const fresh = await get("/sie"); // stored
    failing = true;
    const r = await get("/sie");
    failing = false;
    expect(r.status).toBe(200);
    expect(r.headers.get("x-cache")).toBe("STALE");
    expect(r.headers.get("x-switchyard-fallback")).toBe("stale");
    expect(r.text).toBe(fresh.text);
  });

  test("stale-while-revalidate: the stale copy is served at once and refreshed in the background", async () => {
    await get("/swr"); // stored
    const before = count("/swr");
    const r = await get("/swr");
    expect(r.headers.get("x-cache")).toBe("STALE");
    await waitFor("background refresh", () => count("/swr") > before);
  });
});

describe("invalidation and purge", () => {
  test("an unsafe method invalidates the stored URI", async () => {
    await get("/items");
    await untilHit("/fresh");
    const r = await fetch(proxy.origin + "/fresh", { method: "POST", body: "x" });
    expect(r.status).toBe(200);
    await waitFor("invalidated", async () => (await get("/fresh")).headers.get("x-cache") === "MISS");
  });

  test("purge by tag, through the cache API", async () => {
    await get("/tagged");
    await untilHit("/tagged");
    const cache = proxy.running.state.runtime.current.caches.get("main")!;
    expect(await cache.purge({ tag: "product-7" })).toBe(1);
    expect((await get("/tagged")).headers.get("x-cache")).toBe("MISS");
    await untilHit("/tagged");
    expect(await cache.purge({ prefix: "http://127.0.0.1" })).toBeGreaterThan(0);
    expect((await get("/tagged")).headers.get("x-cache")).toBe("MISS");
  });
});

test("entries survive a restart: another proxy process on the same file serves them", async () => {
  await get("/fresh");
  await untilHit("/fresh");
  const before = count("/fresh");
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    caches: { main: { path: dbPath } },
    routes: [{ match: { path: { prefix: "/" } }, to: "up", cache: { name: "main" } }],
    clusters: { up: { endpoints: [up.origin] } },
    access_log: { enabled: false },
  });
  const other = await spawnProxy(config.file);
  try {
    // The same Host, so the same key.
    const res = await fetch(`${other.origin}/fresh`, { headers: { host: `127.0.0.1:${proxy.port}` } });
    expect(res.headers.get("x-cache")).toBe("HIT");
    expect(count("/fresh")).toBe(before);
  } finally {
    await other.stop();
    config.cleanup();
  }
});

/**
 * A proxy of its own, with cache "c" on a fresh file in front of a fresh upstream, for tests that
 * need other settings than the shared one; everything is stopped and removed afterwards.
 */
async function withOwnCache(
  upstream: Parameters<typeof startUpstream>[0],
  settings: { cache?: Record<string, unknown>; route?: Record<string, unknown>; admin?: boolean },
  run: (p: TestProxy, u: Upstream) => Promise<void>,
): Promise<void> {
  const own = tempDir();
  const u = startUpstream(upstream);
  const p = await startProxy({
    ...(settings.admin ? { admin: { address: "127.0.0.1", port: 0 } } : {}),
    caches: { c: { path: own.file("c.db"), ...settings.cache } },
    routes: [{ name: "r", to: "u", ...settings.route, cache: { name: "c", ...(settings.route?.cache as object | undefined) } }],
    clusters: { u: { endpoints: [u.origin] } },
  });
  try {
    await run(p, u);
  } finally {
    await p.stop();
    u.stop(true);
    own.cleanup();
  }
}

test("stale-if-error also stands in when the upstream cannot be reached at all", async () => {
  const handler = () => new Response("kept", { headers: { "cache-control": "max-age=0, stale-if-error=300", date: new Date().toUTCString() } });
  await withOwnCache(handler, {}, async (p, flaky) => {
    expect(await (await fetch(`${p.origin}/x`)).text()).toBe("kept"); // stored before the body ended
    flaky.stop(true);
    const res = await fetch(`${p.origin}/x`, { headers: { "x-request-id": "sie-down" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("kept");
    expect(res.headers.get("x-switchyard-fallback")).toBe("stale");
    expect(await p.logOf("sie-down")).toMatchObject({ fallback: "stale", error: "upstream_connect_refused", cache: "STALE" });
  });
});

test("admin API: POST /cache/purge by key, prefix or tag; bad requests get 400 with the reason", async () => {
  const handler = () => new Response("x", { headers: { "cache-control": "max-age=60", "surrogate-key": "t1" } });
  await withOwnCache(handler, { admin: true }, async (p) => {
    const admin = p.running.admin!.url.origin;
    const purge = (body: unknown) => fetch(`${admin}/cache/purge`, { method: "POST", body: JSON.stringify(body) });
    const stored = async (path: string) => {
      await fetch(`${p.origin}${path}`).then((r) => r.text());
      await waitFor("stored", async () => (await fetch(`${p.origin}${path}`)).headers.get("x-cache") === "HIT");
    };
    await stored("/a");
    expect(await (await purge({ cache: "c", key: `http://127.0.0.1:${p.port}/a` })).json()).toEqual({ purged: 1 });
    await stored("/b");
    expect(await (await purge({ cache: "c", tag: "t1" })).json()).toEqual({ purged: 1 });
    await stored("/c/1");
    await stored("/c/2");
    expect(await (await purge({ cache: "c", prefix: `http://127.0.0.1:${p.port}/c/` })).json()).toEqual({ purged: 2 });
    expect((await purge({ cache: "c", key: "k", tag: "t" })).status).toBe(400);
    expect((await purge({ cache: "nope", tag: "t" })).status).toBe(404);
    expect((await fetch(`${admin}/cache/purge`, { method: "POST", body: "{" })).status).toBe(400);
  });
});

test("PURGE on a route that allows it; LRU eviction keeps the file under max_total", async () => {
  const handler = (req: Request) => new Response("z".repeat(4096) + new URL(req.url).pathname, { headers: { "cache-control": "max-age=60" } });
  await withOwnCache(handler, { cache: { max_total: "10KiB", memory: { max_object: "1KiB" } }, route: { cache: { purge_method: true } } }, async (p) => {
    const xcache = async (path: string) => (await fetch(`${p.origin}${path}`)).headers.get("x-cache");
    await fetch(`${p.origin}/p`).then((r) => r.text());
    await waitFor("stored", async () => (await xcache("/p")) === "HIT");
    const purged = await fetch(`${p.origin}/p`, { method: "PURGE" });
    expect(purged.status).toBe(200);
    expect((await purged.json()) as { purged: number }).toMatchObject({ purged: 1 });
    expect(await xcache("/p")).toBe("MISS");
    expect((await fetch(`${p.origin}/never`, { method: "PURGE" })).status).toBe(404);
    // 4 KiB bodies in a 10 KiB cache: storing a third evicts the least recently used.
    for (const path of ["/e1", "/e2", "/e3", "/e4"]) {
      await fetch(`${p.origin}${path}`).then((r) => r.text());
      await waitFor(`${path} stored`, async () => (await xcache(path)) === "HIT");
    }
    const cache = p.running.state.runtime.current.caches.get("c")!;
    expect(await cache.lookup(`http://127.0.0.1:${p.port}/e1`, new Headers())).toBeUndefined();
    expect(await cache.lookup(`http://127.0.0.1:${p.port}/e4`, new Headers())).toBeDefined();
  });
});

test("a Set-Cookie on a revalidation's 304 goes to that client only, never into the shared entry", async () => {
  let cookie = 0;
  const handler = (req: Request) => {
    if (req.headers.get("if-none-match") === '"v"') return new Response(null, { status: 304, headers: { etag: '"v"', "set-cookie": `session=user-${++cookie}` } });
    return new Response("shared body", { headers: { etag: '"v"', "cache-control": "max-age=0, must-revalidate" } });
  };
  await withOwnCache(handler, {}, async (p) => {
    await (await fetch(`${p.origin}/r`)).text(); // stored
    const alice = await fetch(`${p.origin}/r`);
    expect(alice.headers.get("x-cache")).toBe("REVALIDATED");
    expect(alice.headers.get("set-cookie")).toBe("session=user-1");
    const bob = await fetch(`${p.origin}/r`);
    expect(bob.headers.get("set-cookie")).toBe("session=user-2"); // his own, from his own revalidation
    expect(await bob.text()).toBe("shared body");
  });
});
