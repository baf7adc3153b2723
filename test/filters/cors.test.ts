/** CORS filter, through the whole proxy: preflights answered here, headers on every response for allowed origins. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let upstreamSaw: string[] = [];
let proxy: TestProxy;
beforeAll(async () => {
  up = startUpstream((req) => {
    upstreamSaw.push(`${req.method} ${new URL(req.url).pathname}`);
    return new Response("ok", { headers: { "access-control-allow-origin": "https://stale.example" } });
  });
  proxy = await startProxy({
    routes: [
      {
        name: "api", match: { path: { prefix: "/api" } }, to: "api",
        filters: [{
          type: "cors", allow_origins: ["https://app.example.com"], allow_origin_regex: ["^https://[a-z0-9-]+\\.preview\\.example\\.com$"],
          allow_methods: ["GET", "POST", "DELETE"], allow_headers: ["content-type", "x-api-key"], expose_headers: ["x-request-id"],
          allow_credentials: true, max_age: "1h",
        }],
      },
      { name: "public", match: { path: { prefix: "/public" } }, to: "api", filters: [{ type: "cors", allow_origins: ["*"] }] },
      {
        // Written without ^ and $: matched against the whole origin all the same.
        name: "loose", match: { path: { prefix: "/loose" } }, to: "api",
        filters: [{ type: "cors", allow_origin_regex: ["https://[a-z0-9-]+\\.example\\.com", "https://a\\.example\\.org|https://b\\.example\\.org"], allow_credentials: true }],
      },
      { name: "dead", match: { path: { prefix: "/dead" } }, to: "dead", filters: [{ type: "cors", allow_origins: ["https://app.example.com"] }] },
    ],
    clusters: { api: { endpoints: [up.origin] }, dead: { endpoints: ["127.0.0.1:1"] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

const preflight = (path: string, origin: string, method: string, headers?: string) =>
  fetch(`${proxy.origin}${path}`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, ...(headers ? { "access-control-request-headers": headers } : {}) },
  });

test("an allowed preflight is answered here with 204 and never reaches the upstream", async () => {
  upstreamSaw = [];
  const res = await preflight("/api/items", "https://app.example.com", "DELETE", "Content-Type, X-Api-Key");
  expect(res.status).toBe(204);
  expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
  expect(res.headers.get("access-control-allow-methods")).toBe("GET, POST, DELETE");
  expect(res.headers.get("access-control-allow-headers")).toBe("content-type, x-api-key");
  expect(res.headers.get("access-control-allow-credentials")).toBe("true");
  expect(res.headers.get("access-control-max-age")).toBe("3600");
  expect(res.headers.get("vary")).toContain("Origin");
  expect(res.headers.get("x-request-id")).not.toBeNull();
  expect(upstreamSaw).toEqual([]);
});

test("a preflight from an unknown origin, for a method or a header not allowed: 403 JSON naming the reason", async () => {
  const cases: [string, string, string | undefined, string][] = [
    ["https://evil.example", "GET", undefined, "origin"],
    ["https://app.example.com.evil.example", "GET", undefined, "origin"],
    ["https://app.example.com", "PUT", undefined, "method PUT"],
    ["https://app.example.com", "POST", "x-secret", "header x-secret"],
  ];
  for (const [origin, method, headers, reason] of cases) {
    const res = await preflight("/api/x", origin, method, headers);
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: string; message: string; request_id: string };
    expect(body.error).toBe("cors_rejected");
    expect(body.message).toContain(reason);
    expect(body.request_id).toBeString();
    // The refusal itself is readable by an allowed origin's scripts (it names the reason).
    expect(res.headers.get("access-control-allow-origin")).toBe(reason === "origin" ? null : origin);
  }
});

test("origins matched by regex are anchored; the upstream's own CORS headers are replaced", async () => {
  const ok = await fetch(`${proxy.origin}/api/x`, { headers: { origin: "https://pr-42.preview.example.com" } });
  expect(ok.headers.get("access-control-allow-origin")).toBe("https://pr-42.preview.example.com");
  expect(ok.headers.get("access-control-expose-headers")).toBe("x-request-id");
  expect(ok.headers.get("vary")).toContain("Origin");
  const no = await fetch(`${proxy.origin}/api/x`, { headers: { origin: "https://pr-42.preview.example.com.evil.io" } });
  expect(no.status).toBe(200); // CORS is not access control: forwarded, the browser hides it
  expect(no.headers.get("access-control-allow-origin")).toBe("https://stale.example"); // untouched: not ours to judge
});

test("an origin regex written without anchors still matches only whole origins (no prefix, suffix or alternation escape)", async () => {
  const originFor = async (origin: string) => (await fetch(`${proxy.origin}/loose/x`, { headers: { origin } })).headers.get("access-control-allow-origin");
  expect(await originFor("https://app.example.com")).toBe("https://app.example.com");
  expect(await originFor("https://b.example.org")).toBe("https://b.example.org");
  for (const evil of ["https://app.example.com.evil.io", "https://evil.io/https://app.example.com", "http://x?https://app.example.com", "https://a.example.org.evil.io", "evil https://b.example.org"]) {
    expect({ evil, allowed: await originFor(evil) }).toEqual({ evil, allowed: "https://stale.example" }); // the upstream's own, untouched
    const res = await preflight("/loose/x", evil, "GET");
    expect({ evil, status: res.status }).toEqual({ evil, status: 403 });
  }
});

test("a plain OPTIONS (no Access-Control-Request-Method) is forwarded; no Origin means no CORS headers", async () => {
  upstreamSaw = [];
  const res = await fetch(`${proxy.origin}/api/opt`, { method: "OPTIONS", headers: { origin: "https://app.example.com" } });
  expect(res.status).toBe(200);
  expect(upstreamSaw).toEqual(["OPTIONS /api/opt"]);
  const plain = await fetch(`${proxy.origin}/public/x`);
  expect(plain.headers.get("access-control-allow-origin")).toBe("https://stale.example");
  const any = await fetch(`${proxy.origin}/public/x`, { headers: { origin: "https://anyone.example" } });
  expect(any.headers.get("access-control-allow-origin")).toBe("*");
});

test("error responses made by the proxy carry the CORS headers too, so the browser can read them", async () => {
  const res = await fetch(`${proxy.origin}/dead/x`, { headers: { origin: "https://app.example.com" } });
  expect(res.status).toBe(502);
  expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
  expect(((await res.json()) as { error: string }).error).toBe("upstream_connect_refused");
});

test("bad cors configs are refused with their path", () => {
  const bad = (filter: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nroutes: [{to: a, filters: [${filter}]}]\n`));
  expect(() => bad("{type: cors}")).toThrow(/routes\[0\]\.filters\[0\]\.allow_origins: give allow_origins or allow_origin_regex/);
  expect(() => bad("{type: cors, allow_origins: ['*'], allow_credentials: true}")).toThrow(/cannot be used with allow_credentials/);
  expect(() => bad("{type: cors, allow_origins: ['https://a.example/path']}")).toThrow(/without a path/);
  expect(() => bad("{type: corz, allow_origins: ['*']}")).toThrow(/routes\[0\]\.filters\[0\]\.type/);
});
