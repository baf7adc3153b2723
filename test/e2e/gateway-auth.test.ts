/**
 * The gateway features behind a real auth filter: a transform sets a field from a verified claim,
 * a composition reads claims, a custom module sees the caller — and an unauthenticated request
 * reaches none of them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { SignJWT } from "jose";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const SECRET = "a-shared-secret-of-at-least-32-bytes!";
let up: Upstream;
let seen: { path: string; body: string }[] = [];
let proxy: TestProxy;

const token = (claims: Record<string, unknown>) =>
  new SignJWT({ exp: Math.floor(Date.now() / 1000) + 600, ...claims }).setProtectedHeader({ alg: "HS256", kid: "h1" }).sign(new TextEncoder().encode(SECRET));

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const url = new URL(req.url);
    seen.push({ path: `${url.pathname}${url.search}`, body: await req.text() });
    if (url.pathname.startsWith("/accounts/")) return Response.json({ id: url.pathname.split("/")[2], balance: 10 });
    return Response.json({ ok: true });
  });
  const auth = { type: "auth" as const, providers: ["idp"] };
  proxy = await startProxy({
    auth: { idp: { type: "jwt", algorithms: ["HS256"], keys: [{ secret: SECRET, kid: "h1", alg: "HS256" }] } },
    modules: { dir: join(import.meta.dir, "../fixtures/modules") },
    routes: [
      { name: "orders", match: { path: { prefix: "/orders" } }, to: "api", filters: [auth, { type: "transform", request: [{ op: "set", path: "owner", claim: "sub" }, { op: "set", path: "plan", claim: "plan" }] }] },
      { name: "me", match: { path: { exact: "/me" } }, filters: [auth], compose: { calls: { account: { cluster: "api", path: "/accounts/${claims.sub}" } }, template: { account: "${calls.account}", plan: "${claims.plan}" } } },
      { name: "lab", match: { path: { prefix: "/lab/" } }, module: "lab", filters: [auth] },
    ],
    clusters: { api: { endpoints: [up.origin] }, files: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

test("a transform sets fields from the verified claims, over what the client sent", async () => {
  seen = [];
  const res = await fetch(`${proxy.origin}/orders`, {
    method: "POST", body: '{"item":"x","owner":"someone-else"}',
    headers: { "content-type": "application/json", authorization: `Bearer ${await token({ sub: "u-7", plan: "gold" })}` },
  });
  expect(res.status).toBe(200);
  expect(JSON.parse(seen[0]!.body)).toEqual({ item: "x", owner: "u-7", plan: "gold" });
});

test("a composition reads the caller's claims (URL-encoded into the call's path)", async () => {
  seen = [];
  const res = await fetch(`${proxy.origin}/me`, { headers: { authorization: `Bearer ${await token({ sub: "u/8", plan: "free" })}` } });
  expect(await res.json()).toEqual({ account: { id: "u%2F8", balance: 10 }, plan: "free" });
  expect(seen[0]!.path).toBe("/accounts/u%2F8");
});

test("a module sees the caller", async () => {
  const res = await fetch(`${proxy.origin}/lab/whoami`, { headers: { authorization: `Bearer ${await token({ sub: "u-9", plan: "team" })}` } });
  expect(await res.json()).toEqual({ subject: "u-9", provider: "idp", plan: "team" });
});

test("without a credential none of them runs: 401", async () => {
  seen = [];
  for (const [path, method] of [["/orders", "POST"], ["/me", "GET"], ["/lab/whoami", "GET"]] as const) {
    const res = await fetch(`${proxy.origin}${path}`, { method, body: method === "POST" ? "{}" : undefined });
    expect(res.status).toBe(401);
  }
  expect(seen).toEqual([]);
});
