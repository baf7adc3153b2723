/** JSON body mapping (transform filter): request and response, limits, untouched passes, compression, hostile bodies. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { gunzipSync } from "node:zlib";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { GREETER, GREETER_DESCRIPTORS, startGreeter } from "../helpers/greeter.ts";
import { parsePath } from "../../src/filters/transform/json-path.ts";
import { transformFilter } from "../../src/filters/transform/transform.ts";
import { TransformFilterSchema } from "../../src/filters/transform/schema.ts";
import type { RuntimeDeps } from "../../src/filters/filter.ts";
import type { MatchedContext } from "../../src/proxy/context.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { tempDir } from "../helpers/tmp.ts";
import { rawUpstream, slowBody, startUpstream, type Upstream } from "../helpers/upstream.ts";

interface Saw { body: string; length: string | null; chunked: boolean; type: string | null }
let seen: Saw[] = [];
let up: Upstream;
let dying: ReturnType<typeof rawUpstream>;
let proxy: TestProxy;
let flaky = 0;
const dir = tempDir();

const bigItems = Array.from({ length: 1500 }, (_, i) => ({ id: i, name: `item number ${i} of the catalogue`, secret: "s3cr3t" }));

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.text();
    seen.push({ body, length: req.headers.get("content-length"), chunked: req.headers.get("transfer-encoding") === "chunked", type: req.headers.get("content-type") });
    const json = { "content-type": "application/json" };
    if (path.endsWith("/echo")) return new Response(body, { headers: { "content-type": req.headers.get("content-type") ?? "text/plain" } });
    if (path.endsWith("/user")) {
      return new Response(JSON.stringify({ id: 12345678901234567890n.toString(), user: { name: "Ada", password: "hunter2" }, ok: true }), { headers: { ...json, etag: '"v1"' } });
    }
    if (path.endsWith("/bignum")) return new Response('{"id":12345678901234567890123,"price":1.10,"tiny":1e-400,"drop":1}', { headers: json });
    if (path.endsWith("/items")) return new Response(JSON.stringify({ items: bigItems }), { headers: json });
    if (path.endsWith("/chunked")) {
      const text = JSON.stringify({ items: bigItems.slice(0, 20) });
      return new Response(slowBody([text.slice(0, 100), text.slice(100)], 5), { headers: json });
    }
    if (path.endsWith("/huge-chunked")) {
      const text = JSON.stringify({ items: bigItems });
      return new Response(slowBody([text.slice(0, 30_000), text.slice(30_000)], 5), { headers: json });
    }
    if (path.endsWith("/error")) return new Response('{"error":"nope","secret":"x"}', { status: 404, headers: json });
    if (path.endsWith("/text")) return new Response('{"secret":"looks like json"}', { headers: { "content-type": "text/plain" } });
    if (path.endsWith("/invalid")) return new Response('{"secret": oops', { headers: json });
    if (path.endsWith("/deep")) return new Response("[".repeat(200_000) + "]".repeat(200_000), { headers: json });
    // As nginx's gzip: compressed when the request says it can take it.
    if (path.endsWith("/negotiated")) {
      const text = '{"user":{"name":"Ada","password":"hunter2"}}';
      return /gzip/.test(req.headers.get("accept-encoding") ?? "") ? new Response(Bun.gzipSync(text), { headers: { ...json, "content-encoding": "gzip" } }) : new Response(text, { headers: json });
    }
    if (path.endsWith("/gzipped")) return new Response(Bun.gzipSync('{"secret":"x"}'), { headers: { ...json, "content-encoding": "gzip" } });
    if (path.endsWith("/proto")) return new Response('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"secret":1}', { headers: json });
    if (path.endsWith("/cached")) return new Response('{"user":{"name":"Ada","password":"p"}}', { headers: { ...json, "cache-control": "max-age=60" } });
    if (path.endsWith("/flaky")) return flaky++ % 2 === 0 ? new Response("down", { status: 503 }) : new Response(body, { headers: json });
    return new Response("?", { status: 404 });
  });
  // Announces 100 bytes of JSON, sends 20, then resets.
  dying = rawUpstream((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"secret": "abc", "');
    setTimeout(() => socket.end(), 20); // the delay is the scenario: the head and part of the body first, the close after
  });
  const mapResponse = { type: "transform" as const, response: [
    { op: "remove" as const, path: "user.password" },
    { op: "rename" as const, from: "user.name", to: "profile.display_name" },
    { op: "remove" as const, path: "items[*].secret" },
    { op: "rename" as const, from: "items[*].id", to: "items[*].item_id" },
    { op: "remove" as const, path: "secret" },
    { op: "remove" as const, path: "drop" },
    { op: "set" as const, path: "served_by", value: "switchyard" },
  ] };
  proxy = await startProxy({
    routes: [
      {
        name: "req", match: { path: { prefix: "/req/" } }, to: "up",
        filters: [{ type: "transform", max_body: "2KiB", request: [
          { op: "rename", from: "name", to: "user.full_name" },
          { op: "remove", path: "debug" },
          { op: "remove", path: "lines[*].internal" },
          { op: "set", path: "tenant", header: "x-tenant" },
          { op: "set", path: "meta.source", value: { via: "gateway", n: 1 } },
          { op: "set", path: "user.id", claim: "sub" },
          { op: "wrap", key: "data" },
        ] }],
      },
      {
        name: "retry", match: { path: { prefix: "/retry/" } }, to: "up",
        retry: { attempts: 2, retry_on: ["5xx"], non_idempotent: true, backoff: { base: "1ms", max: "1ms" } },
        filters: [{ type: "transform", request: [{ op: "set", path: "tries", value: "same" }] }],
      },
      { name: "res", match: { path: { prefix: "/res/" } }, to: "up", filters: [mapResponse] },
      // Two routes on one cache key: the raw one shows what the cache holds.
      { name: "cached-raw", match: { path: { prefix: "/cache/" }, headers: [{ name: "x-raw", present: true }] }, to: "up", cache: { name: "main" } },
      { name: "cached", match: { path: { prefix: "/cache/" } }, to: "up", cache: { name: "main" }, filters: [mapResponse] },
      { name: "zip", match: { path: { prefix: "/zip/" } }, to: "up", compression: { min_size: "1B" }, filters: [mapResponse] },
      { name: "small", match: { path: { prefix: "/small/" } }, to: "up", filters: [{ ...mapResponse, max_body: "4KiB" }] },
      { name: "dying", match: { path: { prefix: "/dying" } }, to: "dying", filters: [mapResponse] },
      {
        name: "strict", match: { path: { prefix: "/strict/" } }, to: "up",
        filters: [{ type: "transform", max_body: "1KiB", strict_request: true, request: [{ op: "set", path: "tenant", header: "x-tenant" }] }],
      },
      { name: "limited", match: { path: { prefix: "/limited/" } }, to: "up", max_request_body: "20B", filters: [{ type: "transform", request: [{ op: "remove", path: "x" }] }] },
      { name: "slow", match: { path: { prefix: "/slow/" } }, to: "up", timeouts: { request: "5s", idle: "300ms" }, filters: [{ type: "transform", request: [{ op: "remove", path: "x" }] }] },
    ],
    clusters: { up: { endpoints: [up.origin] }, dying: { endpoints: [dying.origin] } },
    caches: { main: { path: dir.file("cache.db") } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  dying.stop();
  dir.cleanup();
});

const post = (path: string, body: RequestInit["body"], headers: Record<string, string> = {}) =>
  fetch(`${proxy.origin}${path}`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });

describe("request bodies", () => {
  test("rename, remove, set (header, constant, absent claim) and wrap; Content-Length is the new body's", async () => {
    seen = [];
    const sent = { name: "Ada", debug: true, lines: [{ sku: "a", internal: 1 }, { sku: "b" }], user: { id: "forged-by-client" } };
    const res = await post("/req/echo", JSON.stringify(sent), { "x-tenant": "acme" });
    expect(res.status).toBe(200);
    const want = { data: { lines: [{ sku: "a" }, { sku: "b" }], user: { full_name: "Ada" }, tenant: "acme", meta: { source: { via: "gateway", n: 1 } } } };
    expect(JSON.parse(seen[0]!.body)).toEqual(want);
    // No claim (no auth filter ran): the client's own user.id is removed, never trusted.
    expect(seen[0]!.length).toBe(String(Buffer.byteLength(seen[0]!.body)));
    expect(seen[0]!.chunked).toBe(false);
  });

  test("an unsized (chunked) JSON body within the limit is mapped and sent with a length", async () => {
    seen = [];
    const res = await post("/req/echo", slowBody(['{"name":', '"Bo","debug":1}'], 5));
    expect(res.status).toBe(200);
    expect(JSON.parse(seen[0]!.body)).toEqual({ data: { user: { full_name: "Bo" }, meta: { source: { via: "gateway", n: 1 } } } });
    expect(seen[0]!.length).toBe(String(seen[0]!.body.length));
  });

  test("bodies over the limit pass untouched: sized ones unread, unsized ones streamed on after the first bytes", async () => {
    seen = [];
    const big = JSON.stringify({ name: "x".repeat(3000), debug: true });
    await post("/req/echo", big);
    expect(seen[0]!.body).toBe(big);
    expect(seen[0]!.length).toBe(String(big.length));
    const chunks = [big.slice(0, 1500), big.slice(1500, 2500), big.slice(2500)];
    await post("/req/echo", slowBody(chunks, 5));
    expect(seen[1]!.body).toBe(big);
    expect(seen[1]!.chunked).toBe(true);
  });

  test("non-JSON, invalid JSON, invalid UTF-8 and encoded bodies pass untouched", async () => {
    seen = [];
    await post("/req/echo", '{"debug":1}', { "content-type": "text/plain" });
    await post("/req/echo", '{"debug": 1,');
    await post("/req/echo", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]));
    const gz = Bun.gzipSync('{"debug":1}');
    await post("/req/echo", gz, { "content-encoding": "gzip" });
    expect(seen[0]!.body).toBe('{"debug":1}');
    expect(seen[1]!.body).toBe('{"debug": 1,');
    expect(seen[2]!.body.length).toBe(new TextDecoder().decode(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])).length);
    expect(seen[3]!.length).toBe(String(gz.byteLength));
  });

  test("strict_request: a body the mapping cannot reach is refused, so a client cannot slip its own tenant past it", async () => {
    seen = [];
    const forged = '{"tenant":"evil"}';
    const refused: [RequestInit["body"], Record<string, string>, number, string][] = [
      [forged, { "content-type": "text/plain" }, 415, "unsupported_media_type"],
      [Bun.gzipSync(forged), { "content-encoding": "gzip" }, 415, "unsupported_media_type"],
      [JSON.stringify({ tenant: "evil", pad: "x".repeat(2000) }), {}, 413, "body_too_large"],
      [slowBody([`{"tenant":"evil","pad":"${"x".repeat(800)}`, `${"x".repeat(800)}"}`], 5), {}, 413, "body_too_large"],
      ['{"tenant":"evil",', {}, 400, "bad_request"],
    ];
    for (const [body, headers, status, error] of refused) {
      const res = await post("/strict/echo", body, { "x-tenant": "acme", ...headers });
      expect(res.status).toBe(status);
      expect(((await res.json()) as { error: string }).error).toBe(error);
    }
    expect(seen).toHaveLength(0);
    // A mappable body gets the header's value; without the header the client's field is removed.
    await post("/strict/echo", forged, { "x-tenant": "acme" });
    await post("/strict/echo", forged);
    expect(seen.map((s) => JSON.parse(s.body))).toEqual([{ tenant: "acme" }, {}]);
  });

  test("+json media types are mapped too", async () => {
    seen = [];
    await post("/req/echo", '{"name":"Cy"}', { "content-type": "application/vnd.api+json; charset=utf-8" });
    expect(JSON.parse(seen[0]!.body)).toEqual({ data: { user: { full_name: "Cy" }, meta: { source: { via: "gateway", n: 1 } } } });
  });

  test("a retried request sends the same mapped body again", async () => {
    seen = [];
    flaky = 0;
    const res = await post("/retry/flaky", '{"a":1}');
    expect(res.status).toBe(200);
    expect(seen.map((s) => JSON.parse(s.body))).toEqual([{ a: 1, tries: "same" }, { a: 1, tries: "same" }]);
    expect(res.headers.get("x-switchyard-attempts")).toBe("2");
  });

  test("the route's max_request_body still holds for an unsized body the transform read whole", async () => {
    seen = [];
    const res = await post("/limited/echo", slowBody(['{"x":1,', '"pad":"0123456789abcdef"}'], 5));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe("body_too_large");
    expect(seen).toHaveLength(0);
  });

  test("a client that stalls mid-body gets 408 after the idle timeout", async () => {
    const res = await rawRequest(proxy.port, 'POST /slow/echo HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{"x":', { quietMs: 500, timeoutMs: 3000 });
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body).error).toBe("client_timeout");
  });
});

describe("response bodies", () => {
  test("mapped with an exact Content-Length and a weakened ETag; large numbers keep their digits", async () => {
    const res = await fetch(`${proxy.origin}/res/user`);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ id: "12345678901234567890", user: {}, ok: true, profile: { display_name: "Ada" }, served_by: "switchyard" });
    expect(res.headers.get("content-length")).toBe(String(text.length));
    expect(res.headers.get("etag")).toBe('W/"v1"');
    const num = await (await fetch(`${proxy.origin}/res/bignum`)).text();
    expect(num).toBe('{"id":12345678901234567890123,"price":1.10,"tiny":1e-400,"served_by":"switchyard"}');
  });

  test("wildcards reach every element; a mapped body over 64 KiB still has its length", async () => {
    const res = await fetch(`${proxy.origin}/res/items`);
    const text = await res.text();
    const body = JSON.parse(text) as { items: Record<string, unknown>[] };
    expect(body.items).toHaveLength(1500);
    expect(body.items[7]).toEqual({ item_id: 7, name: "item number 7 of the catalogue" });
    expect(text.length).toBeGreaterThan(64 * 1024);
    expect(res.headers.get("content-length")).toBe(String(text.length));
  });

  test("an unsized response within the limit is mapped; one over it streams untouched", async () => {
    const res = await fetch(`${proxy.origin}/res/chunked`);
    const text = await res.text();
    expect((JSON.parse(text) as { items: unknown[] }).items[0]).toEqual({ item_id: 0, name: "item number 0 of the catalogue" });
    expect(res.headers.get("content-length")).toBe(String(text.length));
    const over = await fetch(`${proxy.origin}/small/huge-chunked`);
    expect(await over.text()).toBe(JSON.stringify({ items: bigItems }));
    expect(over.headers.get("content-length")).toBeNull();
    const sized = await (await fetch(`${proxy.origin}/small/items`)).text();
    expect(sized).toBe(JSON.stringify({ items: bigItems }));
  });

  test("compression applies to the mapped body", async () => {
    const res = await fetch(`${proxy.origin}/zip/items`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    expect(res.headers.get("content-encoding")).toBe("gzip");
    const body = JSON.parse(gunzipSync(new Uint8Array(await res.arrayBuffer())).toString()) as { items: Record<string, unknown>[] };
    expect(body.items[1]).toEqual({ item_id: 1, name: "item number 1 of the catalogue" });
    expect(res.headers.get("vary")).toContain("Accept-Encoding");
  });

  test("a client cannot switch the mapping off by accepting gzip: the upstream is asked for identity", async () => {
    for (const route of ["res", "zip"]) {
      const res = await fetch(`${proxy.origin}/${route}/negotiated`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const text = res.headers.get("content-encoding") === "gzip" ? gunzipSync(bytes).toString() : new TextDecoder().decode(bytes);
      expect(text).not.toContain("hunter2");
      expect(JSON.parse(text)).toEqual({ user: {}, profile: { display_name: "Ada" }, served_by: "switchyard" });
    }
  });

  test("the cache stores the upstream's original; a hit is mapped again", async () => {
    const miss = await fetch(`${proxy.origin}/cache/cached`);
    expect(miss.headers.get("x-cache")).toBe("MISS");
    expect(await miss.json()).toEqual({ user: {}, profile: { display_name: "Ada" }, served_by: "switchyard" });
    const hit = await fetch(`${proxy.origin}/cache/cached`);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(await hit.json()).toEqual({ user: {}, profile: { display_name: "Ada" }, served_by: "switchyard" });
    const raw = await fetch(`${proxy.origin}/cache/cached`, { headers: { "x-raw": "1" } });
    expect(raw.headers.get("x-cache")).toBe("HIT");
    expect(await raw.text()).toBe('{"user":{"name":"Ada","password":"p"}}');
  });

  test("non-2xx, non-JSON, invalid, encoded and HEAD responses pass untouched", async () => {
    expect(await (await fetch(`${proxy.origin}/res/error`)).text()).toBe('{"error":"nope","secret":"x"}');
    expect(await (await fetch(`${proxy.origin}/res/text`)).text()).toBe('{"secret":"looks like json"}');
    expect(await (await fetch(`${proxy.origin}/res/invalid`)).text()).toBe('{"secret": oops');
    const gz = await fetch(`${proxy.origin}/res/gzipped`, { decompress: false } as RequestInit);
    expect(gunzipSync(new Uint8Array(await gz.arrayBuffer())).toString()).toBe('{"secret":"x"}');
    const head = await fetch(`${proxy.origin}/res/user`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("etag")).toBe('"v1"');
  });
});

describe("hostile bodies and peers", () => {
  test("hostile nesting is refused (never passed as if mapped), without burning CPU; the proxy keeps serving", async () => {
    const started = performance.now();
    const res = await fetch(`${proxy.origin}/res/deep`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toBe("upstream_response_too_deep");
    expect(performance.now() - started).toBeLessThan(300); // serialising it again would take ~1 s
    expect((await fetch(`${proxy.origin}/res/user`)).status).toBe(200);
  });

  test("__proto__ and constructor keys in a body stay plain data: nothing is polluted", async () => {
    const res = await fetch(`${proxy.origin}/res/proto`);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.served_by).toBe("switchyard");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.hasOwn(body, "__proto__")).toBe(true);
  });

  test("an upstream that dies while its body is read gives a clean 502", async () => {
    const res = await fetch(`${proxy.origin}/dying`);
    expect(res.status).toBe(502);
    const body = (await res.json()) as { error: string; request_id: string };
    expect(body.error).toMatch(/^upstream_/);
    const line = await proxy.logOf(body.request_id);
    expect(line.status).toBe(502);
  });
});

describe("claims and config", () => {
  /** A context with a verified identity, as an auth filter leaves it. */
  function contextWith(request: Request, claims: Record<string, unknown> | undefined): MatchedContext {
    return {
      request, headers: request.headers, method: request.method, bytesIn: 0,
      route: { config: { timeouts: { request: 5000, idle: 5000 } } },
      auth: claims === undefined ? undefined : { provider: "idp", kind: "jwt", subject: String(claims.sub), claims },
    } as unknown as MatchedContext;
  }

  test("set from a claim takes the verified value (objects copied); an absent claim removes the field", async () => {
    const filter = transformFilter(TransformFilterSchema.parse({
      type: "transform", request: [{ op: "set", path: "user.id", claim: "sub" }, { op: "set", path: "org", claim: "org" }],
    }), { routeName: "claims" } as RuntimeDeps);
    const claims = Object.freeze({ sub: "u-42", org: Object.freeze({ id: 7 }) });
    const req = () => new Request("http://t/x", { method: "POST", body: '{"user":{"id":"forged"},"org":"forged"}', headers: { "content-type": "application/json" } });
    const withClaims = contextWith(req(), claims);
    expect(await filter.onRequest!(withClaims)).toBeUndefined();
    expect(JSON.parse(new TextDecoder().decode(withClaims.requestBody as ArrayBuffer))).toEqual({ user: { id: "u-42" }, org: { id: 7 } });
    const anonymous = contextWith(req(), undefined);
    await filter.onRequest!(anonymous);
    expect(JSON.parse(new TextDecoder().decode(anonymous.requestBody as ArrayBuffer))).toEqual({ user: {} });
  });

  test("bad transform configs are refused with their path", () => {
    const bad = (ops: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nroutes: [{to: a, filters: [{type: transform, request: [${ops}]}]}]\n`));
    expect(() => bad("{op: remove, path: 'a..b'}")).toThrow(/routes\[0\]\.filters\[0\]\.request\[0\]\.path: invalid path "a..b"/);
    expect(() => bad("{op: remove, path: '__proto__.x'}")).toThrow(/"__proto__" cannot be used as a key/);
    expect(() => bad("{op: remove, path: 'items[*]'}")).toThrow(/cannot end with a wildcard/);
    expect(() => bad("{op: set, path: a, value: 1, header: x-a}")).toThrow(/give exactly one of value, header or claim/);
    expect(() => bad("{op: rename, from: 'a[*].x', to: 'b[*].x'}")).toThrow(/request\[0\]\.to: from and to must be the same up to their last wildcard/);
    expect(() => bad("{op: wrap, key: 'a[0]'}")).toThrow(/wrap takes keys only/);
    expect(() => bad("{op: explode, path: a}")).toThrow(/request\[0\]\.op/);
    expect(() => validateConfig("t.yaml", parseText("t.yaml", "listeners: [{port: 8080}]\nclusters: {a: {endpoints: [\"127.0.0.1:1\"]}}\nroutes: [{to: a, filters: [{type: transform}]}]\n"))).toThrow(/give request or response operations/);
  });
});

describe("with grpc_transcode", () => {
  test("the transcoder takes the mapped request body, and the JSON reply is mapped in turn", async () => {
    const greeter = await startGreeter();
    const own = await startProxy({
      clusters: { greeter: { endpoints: [greeter.origin] } },
      routes: [{
        to: "greeter",
        grpc_transcode: { descriptors: GREETER_DESCRIPTORS, service: GREETER, protocol: "connect" },
        filters: [{ type: "transform", request: [{ op: "set", path: "times", value: 3 }, { op: "rename", from: "lang", to: "options.language" }], response: [{ op: "remove", path: "seenHeaders" }] }],
      }],
    });
    try {
      const res = await fetch(`${own.origin}/v1/greet/Ada`, { method: "POST", body: '{"lang":"fr"}', headers: { "content-type": "application/json" } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ message: "Hello, Ada!", times: 3, displayLanguage: "fr" });
      expect(body.seenHeaders).toBeUndefined();
    } finally {
      await own.stop();
      await greeter.stop();
    }
  });
});

describe("paths", () => {
  test.each([
    ["a.b", [{ key: "a" }, { key: "b" }]],
    ["$.a[2].b", [{ key: "a" }, { index: 2 }, { key: "b" }]],
    ["items[*].id", [{ key: "items" }, { any: true }, { key: "id" }]],
    ["items.*.id", [{ key: "items" }, { any: true }, { key: "id" }]],
    ['["a.b"].c', [{ key: "a.b" }, { key: "c" }]],
    ["$['x y']", [{ key: "x y" }]],
  ] as const)("%s", (text, want) => expect(parsePath(text)).toEqual(want as never));
  test.each(["", "$", "a.", "a..b", "a[", "a[x]", "a[0]b", "constructor", "a.prototype"])("refused: %s", (text) => expect(parsePath(text)).toBeString());
});
