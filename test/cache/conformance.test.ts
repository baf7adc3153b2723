/**
 * RFC 9111 conformance through the real proxy, in the manner of the HTTP Caching Tests
 * (cache-tests.fyi): a real client, the proxy, and a test origin whose answer each test scripts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

type Script = (req: Request, n: number) => Response;
const scripts = new Map<string, Script>();
const calls = new Map<string, Request[]>();
let up: Upstream;
let proxy: TestProxy;
const dir = tempDir();

/**
 * Unrelated traffic in flight the whole time (overlap): fills and invalidations of other URLs,
 * through this proxy and through a second one on the same file (another worker). No test may
 * depend on being alone.
 */
let other: TestProxy;
let noiseRunning = true;
let noiseDone: Promise<void> | undefined;
async function noise(): Promise<void> {
  let n = 0;
  const client = async (i: number) => {
    while (noiseRunning && n < 100_000) {
      const target = (n++ % 2 === 0 ? proxy : other).origin;
      const method = n % 5 === 0 ? "POST" : "GET";
      await fetch(`${target}/noise-${i}-${n % 7}`, { method, body: method === "POST" ? "x" : undefined }).then((r) => r.arrayBuffer()).catch(() => {});
    }
  };
  await Promise.all([0, 1, 2].map(client));
}

beforeAll(async () => {
  up = startUpstream((req) => {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/noise-")) return new Response(`noise ${req.method}`, { headers: { "cache-control": "max-age=3600" } });
    const seen = calls.get(path) ?? [];
    seen.push(req);
    calls.set(path, seen);
    const script = scripts.get(path);
    return script === undefined ? new Response("no script", { status: 500 }) : script(req, seen.length);
  });
  proxy = await startProxy({
    caches: { main: { path: dir.file("cache.db") } },
    routes: [{ name: "cached", match: { path: { prefix: "/" } }, to: "up", cache: { name: "main", collapse: { enabled: false } } }],
    clusters: { up: { endpoints: [up.origin] } },
  });
  other = await startProxy({
    caches: { main: { path: dir.file("cache.db") } },
    routes: [{ name: "cached", match: { path: { prefix: "/" } }, to: "up", cache: { name: "main" } }],
    clusters: { up: { endpoints: [up.origin] } },
  });
  noiseDone = noise();
});
afterAll(async () => {
  noiseRunning = false;
  await noiseDone;
  await other.stop();
  await proxy.stop();
  up.stop(true);
  dir.cleanup();
});

let unique = 0;
/** A fresh path whose origin answers with `script`. */
function origin(script: Script): string {
  const path = `/t${++unique}`;
  scripts.set(path, script);
  return path;
}
const upstreamCalls = (path: string) => calls.get(path)?.length ?? 0;
const httpDate = (offsetSeconds = 0) => new Date(Date.now() + offsetSeconds * 1000).toUTCString();
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
/** The obsolete RFC 850 form, e.g. "Sunday, 06-Nov-94 08:49:37 GMT". */
function rfc850Date(offsetSeconds: number): string {
  const d = new Date(Date.now() + offsetSeconds * 1000);
  const [, dd, mon, yyyy, time] = d.toUTCString().split(" ");
  return `${WEEKDAYS[d.getUTCDay()]}, ${dd}-${mon}-${yyyy!.slice(2)} ${time} GMT`;
}

async function get(path: string, headers: Record<string, string> = {}, method = "GET") {
  const res = await fetch(proxy.origin + path, { method, headers });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Two requests, the second after the first's body is stored: did the second reach the origin? */
async function reused(path: string, second: Record<string, string> = {}): Promise<boolean> {
  await get(path);
  const before = upstreamCalls(path);
  await get(path, second);
  return upstreamCalls(path) === before;
}

const ok = (headers: Record<string, string>, body = "body") => () => new Response(body, { headers: { date: httpDate(), ...headers } });

describe("freshness (§4.2)", () => {
  test.each([
    ["max-age=3600", { "cache-control": "max-age=3600" }, true],
    ["s-maxage=3600", { "cache-control": "s-maxage=3600" }, true],
    ["s-maxage=0 wins over max-age=3600", { "cache-control": "max-age=3600, s-maxage=0" }, false],
    ["max-age=0", { "cache-control": "max-age=0" }, false],
    ["Expires in the future", { expires: httpDate(3600) }, true],
    ["Expires in the past", { expires: httpDate(-3600) }, false],
    ["invalid Expires", { expires: "0" }, false],
    ["a future Expires not in HTTP-date form (§5.3: in the past)", { expires: "2099-01-01T00:00:00Z" }, false],
    ["a future Expires in RFC 850 form", { expires: rfc850Date(3600) }, true],
    ["max-age=0 wins over a future Expires", { "cache-control": "max-age=0", expires: httpDate(3600) }, false],
    ["max-age=3600 wins over a past Expires", { "cache-control": "max-age=3600", expires: httpDate(-3600) }, true],
    ["Age beyond max-age", { "cache-control": "max-age=3600", age: "7200" }, false],
    ["MAX-AGE upper case", { "cache-control": "MAX-AGE=3600" }, true],
    ['quoted max-age="3600"', { "cache-control": 'max-age="3600"' }, true],
    ["max-age=-1 with Last-Modified", { "cache-control": "max-age=-1", "last-modified": httpDate(-100_000) }, false],
    ["max-age=1.5 with Last-Modified", { "cache-control": "max-age=1.5", "last-modified": httpDate(-100_000) }, false],
    ["max-age=abc with a future Expires", { "cache-control": "max-age=abc", expires: httpDate(3600) }, false],
    ["s-maxage=-1 with max-age=3600", { "cache-control": "max-age=3600, s-maxage=-1" }, false],
    ["duplicate max-age: the first", { "cache-control": "max-age=3600, max-age=0" }, true],
    ["heuristic from Last-Modified", { "last-modified": httpDate(-100_000) }, true],
    ["no-cache with Last-Modified", { "cache-control": "no-cache", "last-modified": httpDate(-100_000) }, false],
    ["max-age and no-cache: most restrictive", { "cache-control": "max-age=3600, no-cache" }, false],
    ["no-store", { "cache-control": "no-store, max-age=3600" }, false],
    ["private", { "cache-control": "private, max-age=3600" }, false],
  ] as const)("%s → reused %p", async (_, headers, expected) => {
    expect(await reused(origin(ok(headers)), {})).toBe(expected);
  });

  test("an origin that sends no Date or an invalid one: the time received stands in (RFC 9110 §6.6.1), for Expires and heuristics", async () => {
    // Bun.serve always adds Date: this origin writes its answers byte by byte.
    let served = 0;
    const raw = Bun.listen({
      hostname: "127.0.0.1", port: 0,
      socket: {
        data(socket, data) {
          if (!data.toString().includes("\r\n\r\n")) return;
          served++;
          const path = data.toString().split(" ")[1];
          const validator = path === "/expires" ? `Expires: ${httpDate(3600)}` : path === "/heuristic" ? `Last-Modified: ${httpDate(-100_000)}` : `Date: soon\r\nExpires: ${httpDate(3600)}`;
          socket.end(`HTTP/1.1 200 OK\r\nContent-Length: 4\r\n${validator}\r\nConnection: close\r\n\r\nbody`);
        },
      },
    });
    const dateless = await startProxy({
      caches: { main: { path: dir.file("dateless.db") } },
      routes: [{ name: "cached", match: { path: { prefix: "/" } }, to: "raw", cache: { name: "main" } }],
      clusters: { raw: { endpoints: [`http://127.0.0.1:${raw.port}`] } },
    });
    try {
      for (const path of ["/expires", "/heuristic", "/invalid-date"]) {
        const before = served;
        const first = await fetch(dateless.origin + path);
        expect(await first.text()).toBe("body");
        const second = await fetch(dateless.origin + path);
        expect(await second.text()).toBe("body");
        expect(second.headers.get("x-cache")).toBe("HIT");
        expect(second.headers.get("date")).not.toBeNull();
        expect(served - before).toBe(1);
      }
    } finally {
      await dateless.stop();
      raw.stop(true);
    }
  });

  test("heuristic freshness only for heuristically cacheable statuses", async () => {
    const lm = { "last-modified": httpDate(-100_000) };
    expect(await reused(origin(() => new Response("x", { status: 404, headers: { date: httpDate(), ...lm } })))).toBe(true);
    expect(await reused(origin(() => new Response("x", { status: 302, headers: { date: httpDate(), location: "/a", ...lm } })))).toBe(false);
    expect(await reused(origin(() => new Response("x", { status: 307, headers: { date: httpDate(), location: "/a", "cache-control": "max-age=3600" } })))).toBe(true);
    expect(await reused(origin(() => new Response("x", { status: 201, headers: { date: httpDate(), "cache-control": "max-age=3600" } })))).toBe(false);
  });

  test("Age on a hit counts the origin's Age and the time stored", async () => {
    const path = origin(ok({ "cache-control": "max-age=3600", age: "30" }));
    await get(path);
    const hit = await get(path);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(Number(hit.headers.get("age"))).toBeGreaterThanOrEqual(30);
    expect(hit.headers.get("date")).not.toBeNull();
  });
});

describe("request directives (§5.2.1)", () => {
  const fresh = { "cache-control": "max-age=3600" };
  test.each([
    ["no-cache", { "cache-control": "no-cache" }, false],
    ["max-age=0", { "cache-control": "max-age=0" }, false],
    ["Pragma: no-cache", { pragma: "no-cache" }, false],
    ["min-fresh beyond the lifetime", { "cache-control": "min-fresh=7200" }, false],
    ["min-fresh within", { "cache-control": "min-fresh=10" }, true],
    ["no-store (may still be served)", { "cache-control": "no-store" }, true],
  ] as const)("%s → reused %p", async (_, req, expected) => {
    expect(await reused(origin(ok(fresh)), req)).toBe(expected);
  });

  test("max-stale serves a stale response; not when must-revalidate", async () => {
    expect(await reused(origin(ok({ "cache-control": "max-age=1", age: "100" })), { "cache-control": "max-stale" })).toBe(true);
    expect(await reused(origin(ok({ "cache-control": "max-age=1, must-revalidate", age: "100" })), { "cache-control": "max-stale" })).toBe(false);
    expect(await reused(origin(ok({ "cache-control": "max-age=1", age: "100" })), { "cache-control": "max-stale=10" })).toBe(false);
  });

  test("only-if-cached: 504 when nothing usable is stored", async () => {
    const res = await get(origin(ok({ "cache-control": "max-age=3600" })), { "cache-control": "only-if-cached" });
    expect(res.status).toBe(504);
  });
});

describe("storing (§3)", () => {
  test("Authorization: only with public, s-maxage or must-revalidate", async () => {
    const auth = { authorization: "Bearer t" };
    for (const [cc, expected] of [["max-age=3600", false], ["public, max-age=3600", true], ["s-maxage=3600", true], ["must-revalidate, max-age=3600", true]] as const) {
      const path = origin(ok({ "cache-control": cc }));
      await get(path, auth);
      await get(path, auth);
      expect(upstreamCalls(path) === 1).toBe(expected);
    }
  });

  test("Vary: * is never served from the cache", async () => {
    expect(await reused(origin(ok({ "cache-control": "max-age=3600", vary: "*" })))).toBe(false);
  });

  test("Vary on two headers: each must match; whitespace in values is normalised", async () => {
    const path = origin(ok({ "cache-control": "max-age=3600", vary: "Accept-Language, Accept-Encoding" }));
    await get(path, { "accept-language": "en", "accept-encoding": "gzip, br" });
    await get(path, { "accept-language": "en", "accept-encoding": "gzip,br" });
    expect(upstreamCalls(path)).toBe(1);
    await get(path, { "accept-language": "de", "accept-encoding": "gzip, br" });
    expect(upstreamCalls(path)).toBe(2);
  });

  test("HEAD after GET is served from the cache; a HEAD does not store an empty GET body", async () => {
    const path = origin(ok({ "cache-control": "max-age=3600" }, "the body"));
    await get(path);
    const head = await get(path, {}, "HEAD");
    expect(head.headers.get("x-cache")).toBe("HIT");
    expect(upstreamCalls(path)).toBe(1);
    const other = origin(ok({ "cache-control": "max-age=3600" }, "the body"));
    await get(other, {}, "HEAD");
    const body = await get(other);
    expect(body.text).toBe("the body");
  });

  test("hop-by-hop headers are not stored", async () => {
    const path = origin(ok({ "cache-control": "max-age=3600", connection: "x-hop", "x-hop": "1", "keep-alive": "timeout=5" }));
    await get(path);
    const hit = await get(path);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(hit.headers.get("x-hop")).toBeNull();
    expect(hit.headers.get("keep-alive")).toBeNull();
  });

  test("a Range request is not answered 206 from a partial entry; a 206 is not stored", async () => {
    const path = origin((req) => req.headers.has("range")
      ? new Response("bo", { status: 206, headers: { date: httpDate(), "cache-control": "max-age=3600", "content-range": "bytes 0-1/4" } })
      : new Response("body", { headers: { date: httpDate(), "cache-control": "max-age=3600" } }));
    const part = await get(path, { range: "bytes=0-1" });
    expect(part.status).toBe(206);
    const whole = await get(path);
    expect(whole.status).toBe(200);
    expect(whole.text).toBe("body");
  });
});

describe("validation (§4.3)", () => {
  test("a stale entry is revalidated with If-None-Match; the 304 refreshes it and the client gets the body", async () => {
    const path = origin((req) => req.headers.get("if-none-match") === '"a"'
      ? new Response(null, { status: 304, headers: { date: httpDate(), etag: '"a"', "cache-control": "max-age=3600", "x-new": "1" } })
      : new Response("body", { headers: { date: httpDate(), etag: '"a"', "cache-control": "max-age=0", "x-new": "0" } }));
    await get(path);
    const second = await get(path);
    expect(second.status).toBe(200);
    expect(second.text).toBe("body");
    expect(second.headers.get("x-new")).toBe("1");
    expect(second.headers.get("content-length")).toBe("4");
    const third = await get(path);
    expect(third.headers.get("x-cache")).toBe("HIT");
    expect(upstreamCalls(path)).toBe(2);
  });

  test("Last-Modified / If-Modified-Since revalidation", async () => {
    const lm = httpDate(-3600);
    const path = origin((req) => req.headers.get("if-modified-since") === lm
      ? new Response(null, { status: 304, headers: { date: httpDate() } })
      : new Response("body", { headers: { date: httpDate(), "last-modified": lm, "cache-control": "no-cache" } }));
    await get(path);
    const second = await get(path);
    expect(second.text).toBe("body");
    expect(calls.get(path)![1]!.headers.get("if-modified-since")).toBe(lm);
  });

  test("a client's conditional request is answered 304 from a fresh entry (weak comparison)", async () => {
    const path = origin(ok({ "cache-control": "max-age=3600", etag: 'W/"a"' }));
    await get(path);
    const res = await get(path, { "if-none-match": '"a"' });
    expect(res.status).toBe(304);
    expect(upstreamCalls(path)).toBe(1);
  });

  test("If-Modified-Since against an entry without Last-Modified uses its Date (§4.3.2)", async () => {
    const path = origin(ok({ "cache-control": "max-age=3600" }));
    await get(path);
    expect((await get(path, { "if-modified-since": httpDate(60) })).status).toBe(304);
    expect((await get(path, { "if-modified-since": httpDate(-3600) })).status).toBe(200);
    expect(upstreamCalls(path)).toBe(1);
  });

  test("a 304 for the client's own validator does not refresh a stored entry it does not describe (§4.3.4)", async () => {
    // Stored: v1 with no validator, stale. The client holds v2 and asks conditionally; the origin's 304 is about v2.
    const path = origin((req, n) => n === 1
      ? new Response("v1", { headers: { date: httpDate(), "cache-control": "max-age=0" } })
      : req.headers.get("if-none-match") === '"v2"'
        ? new Response(null, { status: 304, headers: { date: httpDate(), etag: '"v2"', "cache-control": "max-age=3600" } })
        : new Response("v2", { headers: { date: httpDate(), etag: '"v2"', "cache-control": "max-age=3600" } }));
    await get(path);
    const conditional = await get(path, { "if-none-match": '"v2"' });
    expect(conditional.status).toBe(304);
    const plain = await get(path);
    expect(plain.text).toBe("v2");
  });

  test("hop-by-hop headers of a 304 are not merged into the stored entry (§3.1, §3.2)", async () => {
    // The first 304 nominates x-hop; the next one nominates another field, so a stored x-hop would show.
    const path = origin((req, n) => req.headers.has("if-none-match")
      ? new Response(null, { status: 304, headers: { date: httpDate(), etag: '"a"', connection: n === 2 ? "x-hop" : "x-other", "x-hop": "1" } })
      : new Response("body", { headers: { date: httpDate(), etag: '"a"', "cache-control": "no-cache" } }));
    await get(path);
    await get(path);
    scripts.set(path, (_, n) => new Response(null, { status: 304, headers: { date: httpDate(), etag: '"a"', connection: `x-other-${n}` } }));
    const third = await get(path);
    expect(third.status).toBe(200);
    expect(third.headers.get("x-hop")).toBeNull();
  });

  test.each(["must-revalidate", "proxy-revalidate", "no-cache"])("%s: stale never served when the origin fails", async (cc) => {
    const path = origin((_, n) => n === 1
      ? new Response("body", { headers: { date: httpDate(), "cache-control": `max-age=0, ${cc}, stale-if-error=3600`, etag: '"a"' } })
      : new Response("down", { status: 503 }));
    await get(path);
    const res = await get(path);
    expect(res.status).toBe(503);
  });

  test("stale-if-error serves the stale copy on a 5xx; stale-while-revalidate serves and refreshes", async () => {
    const sie = origin((_, n) => n === 1 ? new Response("old", { headers: { date: httpDate(), "cache-control": "max-age=0, stale-if-error=3600" } }) : new Response("down", { status: 500 }));
    await get(sie);
    expect((await get(sie)).text).toBe("old");
    const swr = origin((_, n) => new Response(`v${n}`, { headers: { date: httpDate(), "cache-control": "max-age=0, stale-while-revalidate=3600" } }));
    await get(swr);
    expect((await get(swr)).text).toBe("v1");
    await waitFor("background refresh", async () => upstreamCalls(swr) === 2 || undefined);
  });
});

describe("invalidation (§4.4)", () => {
  test("a GET sent right after the POST's answer is not served the invalidated entry", async () => {
    for (let i = 0; i < 5; i++) {
      const target = origin((req, n) => req.method === "POST" ? new Response("done") : new Response(`v${n}`, { headers: { date: httpDate(), "cache-control": "max-age=3600" } }));
      await get(target);
      await get(target, {}, "POST");
      const after = await get(target);
      expect(after.headers.get("x-cache")).toBe("MISS");
    }
  });

  test("a POST invalidates the target and a same-origin Location, not on an error, not another origin", async () => {
    const target = origin((req) => req.method === "POST" ? new Response("done", { status: 201, headers: { location: located } }) : new Response("t", { headers: { date: httpDate(), "cache-control": "max-age=3600" } }));
    const located = origin(ok({ "cache-control": "max-age=3600" }));
    await get(target);
    await get(located);
    await get(target, {}, "POST");
    await get(target);
    await get(located);
    expect(upstreamCalls(target)).toBe(3);
    expect(upstreamCalls(located)).toBe(2);
    const failing = origin((req) => req.method === "DELETE" ? new Response("no", { status: 500 }) : new Response("t", { headers: { date: httpDate(), "cache-control": "max-age=3600" } }));
    await get(failing);
    await get(failing, {}, "DELETE");
    await get(failing);
    expect(upstreamCalls(failing)).toBe(2);
  });
});
