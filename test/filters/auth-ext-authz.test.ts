/**
 * The ext_authz provider against a real authorization service that counts its calls: what it is
 * sent, allow with headers for the upstream, deny with its own answer, failure modes, the cache.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { errorOf } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream, stall, startUpstream, type Upstream } from "../helpers/upstream.ts";

const asked: Record<string, string>[] = [];
let mode: "ok" | "slow" | "503" | "huge" = "ok";
let service: Upstream;
let up: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  service = startUpstream(async (req) => {
    const headers = Object.fromEntries(req.headers);
    asked.push(headers);
    if (mode === "slow") await stall(req, 5000); // far past the 200 ms timeout
    if (mode === "503") return new Response("maintenance", { status: 503 });
    if (mode === "huge") return new Response("x".repeat(100_000), { status: 403 });
    const token = headers.authorization;
    // Tenants by virtual host: this caller may use tenant-a's site, not tenant-b's.
    if (headers["x-forwarded-host"]?.startsWith("tenant-b.")) return new Response('{"reason":"not your tenant"}', { status: 403 });
    if (token === "Bearer let-me-in") return new Response(null, { status: 204, headers: { "x-auth-user": "alice", "x-auth-roles": "admin", "x-internal": "no" } });
    if (token === undefined) return new Response(null, { status: 302, headers: { location: "https://login.example/?next=1", "set-cookie": "x=y" } });
    return new Response('{"reason":"nope"}', { status: 403, headers: { "content-type": "application/json", "x-debug": "secret" } });
  });
  up = recordingUpstream();
  const provider = (extra: Record<string, unknown> = {}) => ({
    type: "ext_authz" as const, url: `${service.origin}/check`, headers: ["authorization", "x-tenant"], timeout: "200ms", ...extra,
  });
  proxy = await startProxy({
    auth: {
      authz: provider({ upstream_headers: ["x-auth-user", "x-auth-roles"], subject_header: "x-auth-user", cache: { ttl: "2s", key: ["method", "path"] } }),
      lenient: provider({ failure_mode: "allow" }),
      strictfail: provider({ status_on_error: 503, max_body: "1KiB" }),
    },
    routes: ["authz", "lenient", "strictfail"].map((name) => ({ name, match: { path: { prefix: `/${name}` } }, to: "api", filters: [{ type: "auth" as const, providers: [name] }] })),
    clusters: { api: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  service.stop(true);
  up.stop(true);
});

const get = (path: string, headers: Record<string, string> = {}, method = "GET") => fetch(`${proxy.origin}${path}`, { method, headers, redirect: "manual" });

test("the service gets the selected headers, method, URI and client address; an allow forwards its chosen headers", async () => {
  asked.length = 0;
  up.seen.length = 0;
  const res = await get("/authz/orders?id=7", { authorization: "Bearer let-me-in", "x-tenant": "acme", "x-other": "no", "x-auth-user": "mallory", "x-request-id": "ext-1" });
  expect(res.status).toBe(200);
  expect(asked[0]).toMatchObject({
    authorization: "Bearer let-me-in", "x-tenant": "acme", "x-forwarded-method": "GET", "x-forwarded-uri": "/authz/orders?id=7",
    "x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http", "x-request-id": "ext-1",
  });
  expect(asked[0]!["x-other"]).toBeUndefined();
  expect(up.seen[0]!.headers["x-auth-user"]).toBe("alice"); // the client's own copy replaced
  expect(up.seen[0]!.headers["x-auth-roles"]).toBe("admin");
  expect(up.seen[0]!.headers["x-internal"]).toBeUndefined();
  expect(await proxy.logOf("ext-1")).toMatchObject({ auth: { provider: "authz", subject: "alice" } });
});

test("a denial passes the service's status, chosen headers and body to the client; the upstream never sees it", async () => {
  up.seen.length = 0;
  const denied = await get("/authz/x", { authorization: "Bearer wrong" });
  expect(denied.status).toBe(403);
  expect(denied.headers.get("content-type")).toBe("application/json");
  expect(denied.headers.get("x-debug")).toBeNull();
  expect(denied.headers.get("x-request-id")).toBeString();
  expect(await denied.text()).toBe('{"reason":"nope"}');
  const login = await get("/authz/x");
  expect(login.status).toBe(302);
  expect(login.headers.get("location")).toBe("https://login.example/?next=1");
  expect(login.headers.get("set-cookie")).toBeNull();
  expect(up.seen).toHaveLength(0);
});

test("decisions are cached by the selected headers and the configured request facts: N requests → 1 call", async () => {
  asked.length = 0;
  for (let i = 0; i < 10; i++) expect((await get("/authz/cached", { authorization: "Bearer let-me-in" })).status).toBe(200);
  await Promise.all(Array.from({ length: 10 }, () => get("/authz/cached", { authorization: "Bearer wrong" })));
  expect(asked).toHaveLength(2);
  await get("/authz/cached", { authorization: "Bearer let-me-in" }, "POST"); // method is in the key
  await get("/authz/other", { authorization: "Bearer let-me-in" }); // path too
  await get("/authz/cached", { authorization: "Bearer let-me-in", "x-tenant": "globex" }); // and every selected header
  expect(asked).toHaveLength(5);
});

test("a cached decision is never reused for another Host or scheme: the service was told them, and may decide by them", async () => {
  asked.length = 0;
  const on = (host: string) => rawRequest(proxy.port, `GET /authz/tenant HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer let-me-in\r\n\r\n`, { quietMs: 100 });
  expect((await on("tenant-a.example")).status).toBe(200);
  expect((await on("tenant-a.example")).status).toBe(200); // cached
  expect(asked).toHaveLength(1);
  const other = await on("tenant-b.example");
  expect(other.status).toBe(403);
  expect(other.body).toContain("not your tenant");
  expect(asked).toHaveLength(2);
  expect(asked[1]!["x-forwarded-host"]).toBe("tenant-b.example");
});

test("failures: deny with status_on_error (default 403), or allow with failure_mode: allow", async () => {
  for (const m of ["slow", "503", "huge"] as const) {
    mode = m;
    const started = performance.now();
    const failed = await get("/strictfail", { authorization: "Bearer let-me-in" });
    expect(failed.status).toBe(503);
    const body = await errorOf(failed);
    expect(body.error).toBe("ext_authz_failed");
    expect(body.message).toStartWith("the authorization service failed: ");
    if (m === "slow") expect(performance.now() - started).toBeLessThan(2500); // the 200 ms timeout, not the 5 s stall
    up.seen.length = 0;
    expect((await get("/lenient", { authorization: "Bearer let-me-in" })).status).toBe(200);
    expect(up.seen).toHaveLength(1);
  }
  mode = "ok";
  expect((await get("/strictfail", { authorization: "Bearer let-me-in" })).status).toBe(200);
});

test("a dead service is a failure too (403 by default)", async () => {
  const config = JSON.parse(await Bun.file(proxy.configFile).text());
  config.auth.lenient = { type: "ext_authz", url: "http://127.0.0.1:1/check" };
  proxy.writeConfig(config);
  expect(await proxy.running.reload()).toBe(true);
  const res = await get("/lenient", { authorization: "Bearer let-me-in" });
  expect(res.status).toBe(403);
  expect((await errorOf(res)).message).toBe("the authorization service failed: connection refused");
});
