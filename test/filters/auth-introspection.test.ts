/**
 * The introspection provider (RFC 7662) against a real introspection endpoint that counts its
 * calls: caching by lifetime and bounded, negative caching, one call for concurrent requests,
 * client authentication, timeouts and failures.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { introspectionProvider } from "../../src/filters/auth/introspection.ts";
import { IntrospectionProviderSchema } from "../../src/filters/auth/schema.ts";
import type { ProxyContext } from "../../src/proxy/context.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { errorOf } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { recordingUpstream, stall, startUpstream, type Upstream } from "../helpers/upstream.ts";

const now = () => Math.floor(Date.now() / 1000);
/** token → what the endpoint says about it. */
const tokens: Record<string, Record<string, unknown>> = {};
const calls: { token: string; auth: string | null; form: Record<string, string> }[] = [];
let mode: "ok" | "slow" | "500" | "garbage" = "ok";
let endpoint: Upstream;
let up: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  endpoint = startUpstream(async (req) => {
    const form = Object.fromEntries(new URLSearchParams(await req.text()));
    calls.push({ token: form.token ?? "", auth: req.headers.get("authorization"), form });
    if (mode === "slow") await stall(req, 5000); // far past the 300 ms timeout
    if (mode === "500") return new Response("oops", { status: 500 });
    if (mode === "garbage") return new Response("<html>", { headers: { "content-type": "text/html" } });
    return Response.json(tokens[form.token ?? ""] ?? { active: false });
  });
  up = recordingUpstream();
  const provider = (extra: Record<string, unknown> = {}) => ({
    type: "introspection" as const, endpoint: `${endpoint.origin}/introspect`, client_id: "gateway", client_secret: "s3cret:/+", timeout: "300ms", ...extra,
  });
  proxy = await startProxy({
    auth: {
      opaque: provider({ forward_claims: { sub: "x-user", scope: "x-scope" }, audiences: ["orders"], cache: { max_ttl: "1m", negative_ttl: "400ms" } }),
      posted: provider({ client_auth: "post", cache: { max_ttl: "0" }, on_error: "deny" }),
    },
    routes: [
      { name: "opaque", match: { path: { prefix: "/opaque" } }, to: "api", filters: [{ type: "auth", providers: ["opaque"] }] },
      { name: "posted", match: { path: { prefix: "/posted" } }, to: "api", filters: [{ type: "auth", providers: ["posted"] }] },
    ],
    clusters: { api: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  endpoint.stop(true);
  up.stop(true);
});

const get = (path: string, token: string) => fetch(`${proxy.origin}${path}`, { headers: { authorization: `Bearer ${token}` } });
const callsFor = (token: string) => calls.filter((c) => c.token === token).length;

test("an active token passes with its claims forwarded; N requests → 1 introspection call", async () => {
  tokens["tok-active"] = { active: true, sub: "alice", scope: "orders:read orders:write", aud: ["orders"], exp: now() + 600 };
  up.seen.length = 0;
  const answers = await Promise.all(Array.from({ length: 20 }, () => get("/opaque/x", "tok-active")));
  expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
  for (let i = 0; i < 5; i++) expect((await get("/opaque/x", "tok-active")).status).toBe(200);
  expect(callsFor("tok-active")).toBe(1);
  expect(up.seen[0]!.headers["x-user"]).toBe("alice");
  expect(up.seen[0]!.headers["x-scope"]).toBe("orders:read orders:write");
  // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
  expect(calls.find((c) => c.token === "tok-active")!.auth).toBe(`Basic ${btoa("gateway:s3cret%3A%2F%2B")}`);
  expect(calls.find((c) => c.token === "tok-active")!.form.token_type_hint).toBe("access_token");
});

test("inactive: 401 invalid_token, cached briefly (negative_ttl), then asked again", async () => {
  const first = await get("/opaque/x", "tok-unknown");
  expect(first.status).toBe(401);
  expect(first.headers.get("www-authenticate")).toBe('Bearer realm="switchyard", error="invalid_token", error_description="the token is not active"');
  expect((await errorOf(first)).error).toBe("invalid_token");
  for (let i = 0; i < 5; i++) expect((await get("/opaque/x", "tok-unknown")).status).toBe(401);
  expect(callsFor("tok-unknown")).toBe(1);
  tokens["tok-unknown"] = { active: true, sub: "late", aud: "orders" };
  // Still refused from the cache until negative_ttl (400 ms) has passed; then asked again.
  await waitFor("tok-unknown asked again", async () => (await get("/opaque/x", "tok-unknown")).status === 200, 1500);
  expect(callsFor("tok-unknown")).toBe(2);
});

test("an active answer is kept only until the token's exp; expired or wrong-audience tokens are refused", async () => {
  tokens["tok-short"] = { active: true, sub: "s", aud: "orders", exp: now() + 1 };
  expect((await get("/opaque/x", "tok-short")).status).toBe(200);
  tokens["tok-short"] = { active: false };
  // Passed from the cache until exp (within a second); then asked again, and refused.
  await waitFor("tok-short asked again", async () => (await get("/opaque/x", "tok-short")).status === 401, 2500);
  expect(callsFor("tok-short")).toBe(2);
  tokens["tok-billing"] = { active: true, sub: "b", aud: "billing" };
  const res = await get("/opaque/x", "tok-billing");
  expect((await errorOf(res)).message).toBe("the token's audience is not accepted");
});

test("client_secret_post sends the credentials in the form; max_ttl 0 caches nothing", async () => {
  tokens["tok-post"] = { active: true, sub: "p" };
  for (let i = 0; i < 3; i++) expect((await get("/posted", "tok-post")).status).toBe(200);
  expect(callsFor("tok-post")).toBe(3);
  const call = calls.find((c) => c.token === "tok-post")!;
  expect(call.auth).toBeNull();
  expect(call.form).toMatchObject({ client_id: "gateway", client_secret: "s3cret:/+" });
});

test("endpoint failures: 503 auth_unavailable (never cached), or 401 with on_error: deny", async () => {
  tokens["tok-fail"] = { active: true, sub: "f", aud: "orders" };
  for (const m of ["slow", "500", "garbage"] as const) {
    mode = m;
    const started = performance.now();
    const res = await get("/opaque/x", "tok-fail");
    expect(res.status).toBe(503);
    const body = await errorOf(res);
    expect(body.error).toBe("auth_unavailable");
    expect(body.message).toStartWith("the token could not be introspected: ");
    if (m === "slow") expect(performance.now() - started).toBeLessThan(2500); // the 300 ms timeout, not the 5 s stall
    const denied = await get("/posted", "tok-fail");
    expect(denied.status).toBe(401);
    expect((await errorOf(denied)).message).toBe("the token could not be checked");
  }
  mode = "ok";
  expect((await get("/opaque/x", "tok-fail")).status).toBe(200);
});

test("the cache is bounded: least recently used tokens are forgotten", async () => {
  const config = IntrospectionProviderSchema.parse({
    type: "introspection", endpoint: `${endpoint.origin}/introspect`, client_id: "c", client_secret: "s", cache: { max_entries: 2 },
  });
  const provider = introspectionProvider("bounded", config);
  const ctx = (token: string) => ({ headers: new Headers({ authorization: `Bearer ${token}` }) }) as unknown as ProxyContext;
  for (const t of ["lru-a", "lru-b", "lru-c"]) tokens[t] = { active: true, sub: t };
  for (const t of ["lru-a", "lru-b", "lru-a", "lru-c", "lru-a", "lru-b"]) expect((await provider.authenticate(ctx(t))).result).toBe("accepted");
  // a, b, a (hit), c (evicts b), a (hit), b (miss again).
  expect([callsFor("lru-a"), callsFor("lru-b"), callsFor("lru-c")]).toEqual([1, 2, 1]);
});

test("oversize and empty tokens are refused without calling the endpoint", async () => {
  const before = calls.length;
  expect((await errorOf(await get("/opaque/x", "t".repeat(9000)))).message).toBe("the token is over 8192 bytes");
  expect(calls.length).toBe(before);
});

test("an unchanged provider keeps its cache across a reload, a changed one starts afresh; decisions are counted", async () => {
  tokens["tok-reload"] = { active: true, sub: "r", aud: "orders" };
  const accepted = metrics.authDecisions.value(["opaque", "opaque", "accepted"]);
  expect((await get("/opaque/x", "tok-reload")).status).toBe(200);
  const config = JSON.parse(await Bun.file(proxy.configFile).text());
  config.routes.push({ name: "extra", match: { path: { prefix: "/extra" } }, to: "api" });
  proxy.writeConfig(config);
  expect(await proxy.running.reload()).toBe(true);
  expect((await get("/opaque/x", "tok-reload")).status).toBe(200);
  expect(callsFor("tok-reload")).toBe(1);
  config.auth.opaque.timeout = "250ms";
  proxy.writeConfig(config);
  expect(await proxy.running.reload()).toBe(true);
  expect((await get("/opaque/x", "tok-reload")).status).toBe(200);
  expect(callsFor("tok-reload")).toBe(2);
  expect(metrics.authDecisions.value(["opaque", "opaque", "accepted"]) - accepted).toBe(3);
  expect(metrics.authBackendRequests.value(["opaque", "ok"])).toBeGreaterThan(0);
  expect(metrics.authBackendRequests.value(["opaque", "error"])).toBeGreaterThan(0); // the timeouts above
});
