/** Collapsed forwarding: a thundering herd on one cold key makes one upstream request, in one process and across two. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startProxy } from "../helpers/proxy.ts";
import { tempDir } from "../helpers/tmp.ts";
import { rawUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
const hits = new Map<string, number>();
const dir = tempDir();

beforeAll(() => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    await Bun.sleep(300);
    if (path.startsWith("/uncacheable")) return new Response("nope", { headers: { "cache-control": "no-store" } });
    // Always stale, always revalidated: answers 304 to its validator.
    if (path.startsWith("/stale")) {
      const headers = { "cache-control": "max-age=0, must-revalidate", etag: '"v1"' };
      if (req.headers.get("if-none-match") === '"v1"') return new Response(null, { status: 304, headers });
      return new Response(`body of ${path}`, { headers });
    }
    return new Response(`body of ${path}`, { headers: { "cache-control": "max-age=60" } });
  });
});
afterAll(() => {
  up.stop(true);
  dir.cleanup();
});

function config(db: string) {
  return {
    listeners: [{ address: "127.0.0.1", port: 0 }],
    caches: { c: { path: db } },
    // Followers wait as long as a loaded CI machine may need (the default 5 s would let a slow
    // herd go upstream a second time — correct, but not what these tests count).
    routes: [{ to: "u", cache: { name: "c", collapse: { wait: "30s" } }, timeouts: { request: "30s" } }],
    clusters: { u: { endpoints: [up.origin], limits: { max_requests: 5000, max_connections: 5000 } } },
    access_log: { enabled: false },
  };
}

test("200 concurrent misses in one process: one upstream request, everyone gets the body", async () => {
  const p = await startProxy(config(dir.file("one.db")));
  try {
    const bodies = await Promise.all(Array.from({ length: 200 }, () => fetch(`${p.origin}/herd-one`).then((r) => r.text())));
    expect(new Set(bodies)).toEqual(new Set(["body of /herd-one"]));
    expect(hits.get("/herd-one")).toBe(1);
    // An uncacheable answer releases the followers to go upstream themselves.
    const statuses = await Promise.all(Array.from({ length: 5 }, () => fetch(`${p.origin}/uncacheable`).then((r) => r.status)));
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(hits.get("/uncacheable")).toBeGreaterThan(1);
  } finally {
    await p.stop();
  }
}, 30_000);

test("a popular stale key is revalidated once: concurrent requests wait for the refreshed entry", async () => {
  const p = await startProxy(config(dir.file("stale.db")));
  try {
    expect(await (await fetch(`${p.origin}/stale-herd`)).text()).toBe("body of /stale-herd");
    // Stored, and stale at once (max-age=0): wait until it is in the store.
    for (let i = 0; i < 100 && (await fetch(`${p.origin}/stale-herd`)).headers.get("x-cache") !== "REVALIDATED"; i++) await Bun.sleep(20);
    hits.set("/stale-herd", 0);
    const answers = await Promise.all(Array.from({ length: 50 }, () => fetch(`${p.origin}/stale-herd`).then(async (r) => `${r.status} ${r.headers.get("x-cache")} ${await r.text()}`)));
    expect(new Set(answers.map((a) => a.replace(/ (HIT|REVALIDATED) /, " ")))).toEqual(new Set(["200 body of /stale-herd"]));
    expect(hits.get("/stale-herd")).toBe(1);
  } finally {
    await p.stop();
  }
}, 30_000);

test("1,000 concurrent requests for one cold key through two worker processes on one file: exactly one upstream request", async () => {
  const db = dir.file("shared.db");
  const files = [writeTempConfig(config(db)), writeTempConfig(config(db))];
  const workers: ProxyProcess[] = [];
  try {
    for (const f of files) workers.push(await spawnProxy(f.file));
    const host = "herd.example";
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => fetch(`${workers[i % 2]!.origin}/herd-two`, { headers: { host } }).then(async (r) => `${r.status} ${await r.text()}`)),
    );
    expect(new Set(results)).toEqual(new Set(["200 body of /herd-two"]));
    expect(hits.get("/herd-two")).toBe(1);
  } finally {
    for (const w of workers) await w.stop();
    for (const f of files) f.cleanup();
  }
}, 60_000);

test("collapsed followers in the leader's process are streamed its answer as it arrives", async () => {
  let upstreamHits = 0;
  const trickle = rawUpstream((socket) => {
    upstreamHits++;
    socket.write(`HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 100000\r\n\r\n${"a".repeat(40_000)}`);
    setTimeout(() => socket.write("b".repeat(60_000)), 400);
  });
  const p = await startProxy({
    caches: { c: { path: dir.file("stream.db") } },
    routes: [{ to: "t", cache: { name: "c" } }],
    clusters: { t: { endpoints: [trickle.origin] } },
  });
  try {
    const started = performance.now();
    const firstChunkAt: number[] = [];
    const lengths = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const reader = (await fetch(`${p.origin}/stream`)).body!.getReader();
        let n = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (n === 0) firstChunkAt.push(performance.now() - started);
          n += value.byteLength;
        }
        return n;
      }),
    );
    expect(lengths).toEqual([100_000, 100_000, 100_000, 100_000, 100_000]);
    expect(upstreamHits).toBe(1);
    expect(Math.max(...firstChunkAt)).toBeLessThan(300);
  } finally {
    await p.stop();
    trickle.stop();
  }
});

test("a crashed leader's lease lapses: followers stop waiting for it and go upstream", async () => {
  const db = dir.file("crashed.db");
  const { openStore } = await import("../../src/store/client.ts");
  const p = await startProxy({
    caches: { c: { path: db } },
    routes: [{ to: "u", cache: { name: "c", collapse: { lease: "1s", wait: "5s" } } }],
    clusters: { u: { endpoints: [up.origin] } },
  });
  try {
    // A leader in another process took the key and died without a word.
    const store = await openStore(db);
    await store.execute("INSERT INTO leases (lease_key, owner, expires_at) VALUES (?, 'crashed-worker', ?)", [`http://127.0.0.1:${p.port}/orphan`, Date.now() / 1000 + 1]);
    store.close();
    const started = performance.now();
    const res = await fetch(`${p.origin}/orphan`);
    const waited = performance.now() - started;
    expect(await res.text()).toBe("body of /orphan");
    expect(waited).toBeGreaterThan(600); // it did wait for the lease…
    expect(waited).toBeLessThan(3000); // …but only until it lapsed, not the full 5 s
    expect(hits.get("/orphan")).toBe(1);
  } finally {
    await p.stop();
  }
});

test("a collapsed follower whose Vary headers differ from the leader's is not given the leader's answer", async () => {
  let n = 0;
  const u = startUpstream(async (req) => {
    n++;
    await Bun.sleep(200);
    return new Response(`lang=${req.headers.get("accept-language")}`, { headers: { "cache-control": "max-age=60", vary: "accept-language" } });
  });
  const p = await startProxy({ caches: { c: { path: dir.file("vary.db") } }, routes: [{ to: "u", cache: { name: "c" } }], clusters: { u: { endpoints: [u.origin] } } });
  try {
    const [de, fr] = await Promise.all([
      fetch(`${p.origin}/v`, { headers: { "accept-language": "de" } }).then((r) => r.text()),
      (async () => {
        await Bun.sleep(20);
        return fetch(`${p.origin}/v`, { headers: { "accept-language": "fr" } }).then((r) => r.text());
      })(),
    ]);
    expect(de).toBe("lang=de");
    expect(fr).toBe("lang=fr");
    expect(n).toBe(2);
  } finally {
    await p.stop();
    u.stop(true);
  }
});
