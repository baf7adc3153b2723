/** Collapsed forwarding: a thundering herd on one cold key makes one upstream request, in one process and across two. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Socket } from "bun";
import { metrics } from "../../src/observe/metrics.ts";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { type Gate, gate, rawUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
const hits = new Map<string, number>();
const dir = tempDir();
/** The upstream holds requests here until the test has seen the herd form; open unless a test closes it. */
let held: Gate = gate();
held.open();

/** Requests of this process that waited for a leader's answer (collapsed followers). */
const followers = () => metrics.collapsedWaiters.sum((l) => l[0] === "collapse");

/**
 * Holds the upstream for the requests `send` makes until one of them is at the upstream and
 * `formed()` says the others wait for it; then answers.
 */
async function herd<T>(send: () => Promise<T>, formed: () => boolean | Promise<boolean>): Promise<T> {
  held = gate();
  try {
    const sent = send();
    await held.arrived(1);
    await waitFor("the herd to form behind its leader", formed, 20_000);
    held.open();
    return await sent;
  } finally {
    held.open(); // never left closed for the next test
  }
}

/** `formed` for a herd in this process: `n` more followers than now. */
function followersBy(n: number): () => boolean {
  const before = followers();
  return () => followers() - before >= n;
}

beforeAll(() => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    await held.pass();
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
    const bodies = await herd(() => Promise.all(Array.from({ length: 200 }, () => fetch(`${p.origin}/herd-one`).then((r) => r.text()))), followersBy(199));
    expect(new Set(bodies)).toEqual(new Set(["body of /herd-one"]));
    expect(hits.get("/herd-one")).toBe(1);
    // An uncacheable answer releases the followers to go upstream themselves.
    const statuses = await herd(() => Promise.all(Array.from({ length: 5 }, () => fetch(`${p.origin}/uncacheable`).then((r) => r.status))), followersBy(4));
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
    // Stored (before the body ended), and stale at once (max-age=0): the next request revalidates.
    expect((await fetch(`${p.origin}/stale-herd`)).headers.get("x-cache")).toBe("REVALIDATED");
    hits.set("/stale-herd", 0);
    const answers = await herd(() => Promise.all(Array.from({ length: 50 }, () => fetch(`${p.origin}/stale-herd`).then(async (r) => `${r.status} ${r.headers.get("x-cache")} ${await r.text()}`))), followersBy(49));
    expect(new Set(answers.map((a) => a.replace(/ (HIT|REVALIDATED) /, " ")))).toEqual(new Set(["200 body of /stale-herd"]));
    expect(hits.get("/stale-herd")).toBe(1);
  } finally {
    await p.stop();
  }
}, 30_000);

test("1,000 concurrent requests for one cold key through two worker processes on one file: exactly one upstream request", async () => {
  const db = dir.file("shared.db");
  // With an admin listener each: the followers are counted in their own process.
  const files = [0, 1].map(() => writeTempConfig({ ...config(db), admin: { address: "127.0.0.1", port: 0 } }));
  const workers: ProxyProcess[] = [];
  try {
    for (const f of files) workers.push(await spawnProxy(f.file));
    // Over a socket of its own: this process's fetch slots are all taken by the herd.
    const followersIn = async (w: ProxyProcess) => {
      const { body } = await rawRequest(Number(new URL(w.adminOrigin!).port), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      return Number(/^switchyard_collapsed_waiters_total\{kind="collapse"\} (\d+)$/m.exec(body)?.[1] ?? 0);
    };
    const host = "herd.example";
    // This process sends at most 256 requests at a time (Bun's fetch): the first wave is the herd.
    // Followers in both processes, the leader's and the other (which polls the file), before it answers.
    const results = await herd(
      () => Promise.all(Array.from({ length: 1000 }, (_, i) => fetch(`${workers[i % 2]!.origin}/herd-two`, { headers: { host } }).then(async (r) => `${r.status} ${await r.text()}`))),
      async () => (await Promise.all(workers.map(followersIn))).every((n) => n >= 50),
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
  let trickling: Socket<undefined> | undefined;
  const trickle = rawUpstream((socket) => {
    upstreamHits++;
    socket.write(`HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 100000\r\n\r\n${"a".repeat(40_000)}`);
    trickling = socket; // the rest when the test says
  });
  const p = await startProxy({
    caches: { c: { path: dir.file("stream.db") } },
    routes: [{ to: "t", cache: { name: "c" } }],
    clusters: { t: { endpoints: [trickle.origin] } },
  });
  try {
    let withFirstPart = 0;
    const reading = Promise.all(
      Array.from({ length: 5 }, async () => {
        const reader = (await fetch(`${p.origin}/stream`)).body!.getReader();
        let n = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (n === 0) withFirstPart++;
          n += value.byteLength;
        }
        return n;
      }),
    );
    // Everyone has the first part while the upstream still holds back the second.
    await waitFor("the first part at all five clients", () => withFirstPart === 5);
    trickling!.write("b".repeat(60_000));
    const lengths = await reading;
    expect(lengths).toEqual([100_000, 100_000, 100_000, 100_000, 100_000]);
    expect(upstreamHits).toBe(1);
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
  const vary = gate();
  const u = startUpstream(async (req) => {
    n++;
    await vary.pass();
    return new Response(`lang=${req.headers.get("accept-language")}`, { headers: { "cache-control": "max-age=60", vary: "accept-language" } });
  });
  const p = await startProxy({ caches: { c: { path: dir.file("vary.db") } }, routes: [{ to: "u", cache: { name: "c" } }], clusters: { u: { endpoints: [u.origin] } } });
  try {
    const before = followers();
    const de = fetch(`${p.origin}/v`, { headers: { "accept-language": "de" } }).then((r) => r.text());
    await vary.arrived(1); // the leader, at the upstream
    const fr = fetch(`${p.origin}/v`, { headers: { "accept-language": "fr" } }).then((r) => r.text());
    await waitFor("fr following de", () => followers() > before);
    vary.open();
    expect(await de).toBe("lang=de");
    expect(await fr).toBe("lang=fr");
    expect(n).toBe(2);
  } finally {
    await p.stop();
    u.stop(true);
  }
});
