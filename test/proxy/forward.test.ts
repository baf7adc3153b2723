/** The forwarding data path, end to end over real sockets: what the upstream sees and what the client gets. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

let up: ReturnType<typeof recordingUpstream>;
let special: Upstream;
let untrusted: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;
const gz = gzipSync(Buffer.from("compressed payload ".repeat(100)));

beforeAll(async () => {
  up = recordingUpstream("hello", { "x-upstream": "1", "set-cookie": "a=1" });
  untrusted = recordingUpstream("untrusted");
  special = startUpstream((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/gzip") return new Response(gz, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } });
    if (path === "/redirect") return new Response(null, { status: 302, headers: { location: "/elsewhere" } });
    if (path === "/hop") return new Response("hop", { headers: { "keep-alive": "timeout=5", "x-drop": "1", connection: "x-drop", "proxy-authenticate": "Basic" } });
    if (path === "/echo-body") return new Response(req.body, { headers: { "x-method": req.method } });
    if (path === "/large") return new Response(new Uint8Array(200_000).fill(97));
    return new Response("special");
  });
  proxy = await startProxy({
    routes: [
      { name: "exact", match: { path: { exact: "/exact" } }, to: "main" },
      { name: "host", match: { hosts: ["api.example.com"], path: { prefix: "/" } }, to: "special" },
      { name: "wild", match: { hosts: ["*.wild.test"] }, to: "special" },
      { name: "methods", match: { methods: ["DELETE"], path: { prefix: "/m" } }, to: "special" },
      { name: "hdr", match: { headers: [{ name: "x-canary", exact: "yes" }] }, to: "special" },
      { name: "hdr-re", match: { headers: [{ name: "x-version", regex: "^v[2-9]$" }] }, to: "special" },
      { name: "hdr-present", match: { headers: [{ name: "x-debug", present: true }], path: { prefix: "/dbg" } }, to: "special" },
      { name: "hdr-absent", match: { headers: [{ name: "x-auth", present: false }], path: { prefix: "/needs-auth" } }, to: "special" },
      { name: "query", match: { query: [{ name: "beta", exact: "1" }] }, to: "special" },
      { name: "query-re", match: { query: [{ name: "id", regex: "^[0-9]+$" }], path: { prefix: "/q" } }, to: "special" },
      { name: "regex", match: { path: { regex: "^/users/[0-9]+$" } }, to: "special" },
      { name: "rw-prefix", match: { path: { prefix: "/api/v1/" } }, rewrite: { path_prefix: "/v1/" }, to: "main" },
      { name: "rw-regex", match: { path: { prefix: "/shop/" } }, rewrite: { path_regex: { pattern: "^/shop/([a-z]+)/([0-9]+)$", substitution: "/items/$2?cat=$1" } }, to: "main" },
      { name: "rw-host", match: { path: { prefix: "/rehost" } }, rewrite: { host: "internal.svc" }, to: "main" },
      { name: "rw-query", match: { path: { prefix: "/requery" } }, rewrite: { query: { set: { version: "2", lang: "en" }, remove: ["debug"] } }, to: "main" },
      {
        name: "headers", match: { path: { prefix: "/hdrs" } }, to: "main",
        headers: {
          request: { add: { "x-added": "a" }, set: { "x-set": "s" }, remove: ["x-remove-me"] },
          response: { add: { "x-resp-added": "r" }, set: { "x-upstream": "overridden" }, remove: ["set-cookie"] },
        },
      },
      { name: "untrusted", match: { path: { prefix: "/untrusted" } }, to: "untrusted" },
      { name: "special", match: { path: { prefix: "/s/" } }, rewrite: { path_prefix: "/" }, to: "special" },
      { name: "main", match: { path: { prefix: "/" } }, to: "main" },
    ],
    clusters: {
      main: { endpoints: [up.origin] },
      special: { endpoints: [special.origin] },
      untrusted: { endpoints: [untrusted.origin], trusted: false },
    },
  });
});

afterAll(async () => {
  await proxy.stop();
  for (const s of [up, special, untrusted]) s.stop(true);
});

const last = () => up.seen[up.seen.length - 1]!;

async function routeOf(path: string, init: RequestInit = {}): Promise<string> {
  const res = await fetch(proxy.origin + path, init);
  await res.arrayBuffer();
  const id = res.headers.get("x-request-id")!;
  return (await proxy.logOf(id)).route as string;
}

describe("routing", () => {
  test("routes in order, first match wins, on every kind of condition", async () => {
    expect(await routeOf("/exact")).toBe("exact");
    expect(await routeOf("/exact/more")).toBe("main");
    expect(await routeOf("/x", { headers: { host: "api.example.com" } })).toBe("host");
    expect(await routeOf("/x", { headers: { host: "API.Example.com:8080" } })).toBe("host");
    expect(await routeOf("/x", { headers: { host: "a.b.wild.test" } })).toBe("wild");
    expect(await routeOf("/x", { headers: { host: "wild.test" } })).toBe("main");
    expect(await routeOf("/m/1", { method: "DELETE" })).toBe("methods");
    expect(await routeOf("/m/1", { method: "GET" })).toBe("main");
    expect(await routeOf("/x", { headers: { "x-canary": "yes" } })).toBe("hdr");
    expect(await routeOf("/x", { headers: { "x-canary": "no" } })).toBe("main");
    expect(await routeOf("/x", { headers: { "x-version": "v3" } })).toBe("hdr-re");
    expect(await routeOf("/x", { headers: { "x-version": "v1" } })).toBe("main");
    expect(await routeOf("/dbg", { headers: { "x-debug": "" } })).toBe("hdr-present");
    expect(await routeOf("/dbg")).toBe("main");
    expect(await routeOf("/needs-auth")).toBe("hdr-absent");
    expect(await routeOf("/needs-auth", { headers: { "x-auth": "1" } })).toBe("main");
    expect(await routeOf("/x?beta=1")).toBe("query");
    expect(await routeOf("/x?beta=2")).toBe("main");
    expect(await routeOf("/q?id=42")).toBe("query-re");
    expect(await routeOf("/q?id=4x")).toBe("main");
    expect(await routeOf("/users/17")).toBe("regex");
    expect(await routeOf("/users/17/x")).toBe("main");
  });

  test("no matching route is a JSON 404 with the request id", async () => {
    const lone = await startProxy({ routes: [{ match: { path: { exact: "/only" } }, to: "c" }], clusters: { c: { endpoints: [up.origin] } } });
    try {
      const res = await fetch(`${lone.origin}/other`, { headers: { "x-request-id": "req-404" } });
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toContain("application/json");
      expect(await res.json()).toEqual({ error: "no_route", message: expect.any(String), request_id: "req-404" });
      expect(res.headers.get("x-request-id")).toBe("req-404");
    } finally {
      await lone.stop();
    }
  });
});

describe("rewrites", () => {
  test("path prefix, regex substitution, host and query parameters", async () => {
    await (await fetch(`${proxy.origin}/api/v1/users?x=1`)).text();
    expect(last().url.pathname).toBe("/v1/users");
    expect(last().url.search).toBe("?x=1");
    await (await fetch(`${proxy.origin}/shop/books/12`)).text();
    expect(last().url.pathname).toBe("/items/12");
    expect(last().url.searchParams.get("cat")).toBe("books");
    await (await fetch(`${proxy.origin}/rehost`, { headers: { host: "public.example" } })).text();
    expect(last().headers.host).toBe("internal.svc");
    expect(last().headers["x-forwarded-host"]).toBe("public.example");
    await (await fetch(`${proxy.origin}/requery?a=1&debug=true&version=1`)).text();
    expect(Object.fromEntries(last().url.searchParams)).toEqual({ a: "1", version: "2", lang: "en" });
    await (await fetch(`${proxy.origin}/requery`)).text();
    expect(Object.fromEntries(last().url.searchParams)).toEqual({ version: "2", lang: "en" });
  });
});

describe("forwarding", () => {
  test("method, path, query and body arrive intact; the response comes back with its status and headers", async () => {
    const res = await fetch(`${proxy.origin}/a/b%20c?q=1&q=2&empty=`, { method: "PUT", body: "payload", headers: { "content-type": "text/plain" } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
    expect(res.headers.get("x-upstream")).toBe("1");
    expect(res.headers.get("content-length")).toBe("5");
    const seen = last();
    expect(seen.method).toBe("PUT");
    expect(seen.url.pathname).toBe("/a/b%20c");
    expect(seen.url.search).toBe("?q=1&q=2&empty=");
    expect(seen.body).toBe("payload");
    expect(seen.headers["content-type"]).toBe("text/plain");
  });

  test("every method passes through", async () => {
    for (const method of ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]) {
      const res = await fetch(`${proxy.origin}/s/echo-body`, { method, body: method === "GET" ? undefined : `${method}-body` });
      expect(res.headers.get("x-method")).toBe(method);
      expect(await res.text()).toBe(method === "GET" ? "" : `${method}-body`);
    }
    const head = await fetch(`${proxy.origin}/s/large`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("200000");
  });

  test("X-Forwarded-* from a trusted peer (the helper trusts loopback): For appended, Proto and Host kept, the request id generated", async () => {
    const res = await fetch(`${proxy.origin}/fwd`, {
      headers: { host: "shop.example", "x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-forwarded-host": "front.example" },
    });
    await res.text();
    const h = last().headers;
    expect(h["x-forwarded-for"]).toBe("203.0.113.9, 127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("https");
    expect(h["x-forwarded-host"]).toBe("front.example");
    expect(h.host).toBe("shop.example");
    expect(h["x-request-id"]).toMatch(UUID);
    expect(res.headers.get("x-request-id")).toBe(h["x-request-id"]!);
  });

  test("forwarding headers a client could forge are dropped (Forwarded, X-Real-IP, X-Forwarded-Port)", async () => {
    await (await fetch(`${proxy.origin}/forged`, { headers: { forwarded: "for=1.2.3.4;proto=https;host=evil", "x-real-ip": "1.2.3.4", "x-forwarded-port": "443" } })).text();
    const h = last().headers;
    expect(h.forwarded).toBeUndefined();
    expect(h["x-real-ip"]).toBeUndefined();
    expect(h["x-forwarded-port"]).toBeUndefined();
  });

  test("a trusted peer's request id is kept; a hostile one is replaced", async () => {
    let res = await fetch(`${proxy.origin}/rid`, { headers: { "x-request-id": "abc-123" } });
    await res.text();
    expect(last().headers["x-request-id"]).toBe("abc-123");
    expect(res.headers.get("x-request-id")).toBe("abc-123");
    res = await fetch(`${proxy.origin}/rid`, { headers: { "x-request-id": "bad value with spaces\"<>" } });
    await res.text();
    expect(last().headers["x-request-id"]).toMatch(UUID);
  });

  test("traceparent: a valid one is kept, an invalid or missing one is replaced by a new trace", async () => {
    const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    await (await fetch(`${proxy.origin}/t`, { headers: { traceparent: valid } })).text();
    expect(last().headers.traceparent).toBe(valid);
    await (await fetch(`${proxy.origin}/t`, { headers: { traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01" } })).text();
    expect(last().headers.traceparent).toMatch(TRACEPARENT);
    expect(last().headers.traceparent).not.toContain("00000000000000000000000000000000");
    await (await fetch(`${proxy.origin}/t`)).text();
    expect(last().headers.traceparent).toMatch(TRACEPARENT);
  });

  test("per-route header add, set and remove, on request and response", async () => {
    const res = await fetch(`${proxy.origin}/hdrs`, { headers: { "x-added": "client", "x-set": "client", "x-remove-me": "1" } });
    await res.text();
    const h = last().headers;
    expect(h["x-added"]).toBe("client, a");
    expect(h["x-set"]).toBe("s");
    expect(h["x-remove-me"]).toBeUndefined();
    expect(res.headers.get("x-resp-added")).toBe("r");
    expect(res.headers.get("x-upstream")).toBe("overridden");
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  test("a cluster with trusted: false never sees Authorization or Cookie", async () => {
    await (await fetch(`${proxy.origin}/untrusted`, { headers: { authorization: "Bearer secret", cookie: "sid=1", "x-other": "kept" } })).text();
    const h = untrusted.seen[untrusted.seen.length - 1]!.headers;
    expect(h.authorization).toBeUndefined();
    expect(h.cookie).toBeUndefined();
    expect(h["x-other"]).toBe("kept");
    await (await fetch(`${proxy.origin}/trusted`, { headers: { authorization: "Bearer secret", cookie: "sid=1" } })).text();
    expect(last().headers.authorization).toBe("Bearer secret");
    expect(last().headers.cookie).toBe("sid=1");
  });

  test("hop-by-hop headers are removed both ways, including those Connection names", async () => {
    const res = await rawRequest(
      proxy.port,
      "GET /hop-test HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n" +
        "TE: trailers\r\nTrailer: x-t\r\nUpgrade: h2c\r\nProxy-Authorization: Basic abc\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n",
    );
    expect(res.status).toBe(200);
    const h = last().headers;
    for (const name of ["x-private", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection"]) expect(h[name]).toBeUndefined();
    expect(h["x-kept"]).toBe("yes");
    const back = await fetch(`${proxy.origin}/s/hop`);
    await back.text();
    expect(back.headers.get("keep-alive")).toBeNull();
    expect(back.headers.get("x-drop")).toBeNull();
    expect(back.headers.get("proxy-authenticate")).toBeNull(); // addressed to this proxy (RFC 2616 §13.5.1)
  });

  test("no decompression: Content-Encoding and the bytes are exactly what the upstream sent", async () => {
    const res = await fetch(`${proxy.origin}/s/gzip`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect(Buffer.from(await res.arrayBuffer()).equals(gz)).toBe(true);
    expect(res.headers.get("content-length")).toBe(String(gz.byteLength));
    // The client's Accept-Encoding is forwarded as given, nothing added.
    await (await fetch(`${proxy.origin}/ae`, { headers: { "accept-encoding": "br" }, decompress: false } as RequestInit)).text();
    expect(last().headers["accept-encoding"]).toBe("br");
  });

  test("redirects are passed to the client, not followed", async () => {
    const res = await fetch(`${proxy.origin}/s/redirect`, { redirect: "manual" });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("/elsewhere");
  });

  test("a large body streams with its bytes intact", async () => {
    const res = await fetch(`${proxy.origin}/s/large`);
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body.byteLength).toBe(200_000);
    expect(body.every((b) => b === 97)).toBe(true);
  });
});

describe("hostile request lines and headers", () => {
  test("Content-Length together with Transfer-Encoding is refused and never reaches the upstream", async () => {
    const before = up.seen.length;
    const res = await rawRequest(proxy.port, "POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(res.status).toBe(400);
    expect(up.seen.length).toBe(before);
  });

  test("two Content-Length headers, or an obfuscated Transfer-Encoding, are refused", async () => {
    const before = up.seen.length;
    expect((await rawRequest(proxy.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde")).status).toBe(400);
    expect((await rawRequest(proxy.port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")).status).toBe(400);
    expect(up.seen.length).toBe(before);
  });

  test("oversized headers get 431", async () => {
    const res = await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`);
    expect(res.status).toBe(431);
  });

  test("a garbage request target gets 400; an absolute-form target is routed by its path", async () => {
    expect((await rawRequest(proxy.port, "GET abc HTTP/1.1\r\nHost: x\r\n\r\n")).status).toBe(400);
    expect((await rawRequest(proxy.port, "GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n")).status).toBeGreaterThanOrEqual(400);
    const abs = await rawRequest(proxy.port, "GET http://example.com/abs?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    expect(abs.status).toBe(200);
    expect(last().url.pathname).toBe("/abs");
    expect(last().url.search).toBe("?q=1");
  });

  test("two Host headers get a JSON 400", async () => {
    const res = await rawRequest(proxy.port, "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n");
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe("bad_request");
  });

  test("malformed Host values (percent-encoding, a bracketed non-IPv6) are refused with a JSON 400", async () => {
    for (const host of ["a%zz", "[1.2.3.4]", "a b"]) {
      const res = await rawRequest(proxy.port, `POST /x HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\n\r\n`);
      expect(res.status).toBe(400);
    }
  });

  test("dot segments are resolved before routing, so ../ cannot climb out of a prefix", async () => {
    await rawRequest(proxy.port, "GET /s/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(last().url.pathname).toBe("/etc/passwd"); // routed by `main` as /etc/passwd, not by `special`
    const res = await rawRequest(proxy.port, "GET /api/v1/%2e%2e/%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(res.status).toBe(200);
    expect(last().url.pathname).toBe("/secret");
  });

  test("an HTTP/1.0 request without Host is served", async () => {
    const res = await rawRequest(proxy.port, "GET /ten HTTP/1.0\r\n\r\n");
    expect(res.status).toBe(200);
    expect(last().url.pathname).toBe("/ten");
  });

  test("a body over max_request_body gets 413", async () => {
    const small = await startProxy({
      listeners: [{ address: "127.0.0.1", port: 0, max_request_body: "1KiB" }],
      routes: [{ to: "c" }], clusters: { c: { endpoints: [up.origin] } },
    });
    try {
      const res = await fetch(small.origin + "/big", { method: "POST", body: "x".repeat(4096) });
      expect(res.status).toBe(413);
      const ok = await fetch(small.origin + "/small", { method: "POST", body: "x".repeat(512) });
      expect(ok.status).toBe(200);
    } finally {
      await small.stop();
    }
  });
});
