/**
 * The jwt provider through the whole proxy, against a real JWKS issuer (Bun.serve, keys made with
 * jose at test time): every way a token can be wrong, key rotation, a flood of unknown kids, the
 * issuer going down, OIDC discovery, static keys, token sources, forwarded claims, WebSockets, logs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import type { ServerWebSocket } from "bun";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { buildRuntime } from "../../src/runtime/build.ts";
import { b64url, errorOf, type Issuer, sign, type SigningKey, signingKey, startIssuer } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { recordingUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";
import { rawWsClient, wsClient } from "../helpers/ws.ts";

const HMAC_SECRET = "a-shared-secret-of-at-least-32-bytes!";
let up: ReturnType<typeof recordingUpstream>;
let wsUp: Upstream;
let issuer: Issuer;
let flaky: Issuer;
let oidc: Issuer;
let k1: SigningKey;
let k2: SigningKey;
let ec: SigningKey;
let staticRsa: SigningKey;
let proxy: TestProxy;

beforeAll(async () => {
  [k1, k2, ec, staticRsa] = await Promise.all([signingKey("k1"), signingKey("k2"), signingKey("e1", "ES256"), signingKey("s1")]);
  issuer = startIssuer([k1.publicJwk, ec.publicJwk]);
  flaky = startIssuer([k1.publicJwk]);
  oidc = startIssuer([k1.publicJwk]);
  up = recordingUpstream();
  wsUp = startUpstream(
    (req, server) => (server.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 })),
    { message: (ws: ServerWebSocket<unknown>, m) => void ws.send(`echo:${String(m)}`) },
  );
  const jwtAt = (jwks_url: string, extra: Record<string, unknown> = {}) => ({ type: "jwt" as const, jwks_url, issuer: "https://issuer.test", audiences: ["orders"], ...extra });
  const route = (name: string, providers: string[], extra: Record<string, unknown> = {}) => ({
    name, match: { path: { prefix: `/${name}` } }, to: "api", filters: [{ type: "auth" as const, providers, ...extra }],
  });
  proxy = await startProxy({
    auth: {
      corp: jwtAt(issuer.jwksUrl, { forward_claims: { sub: "x-user-id", "org.team": "x-team", name: "x-user-name", groups: "x-groups" }, jwks: { min_refetch_interval: "1s" } }),
      strict: jwtAt(issuer.jwksUrl, { required_claims: { scope: "orders:write", tenant: ["acme", "globex"] } }),
      flaky: jwtAt(flaky.jwksUrl, { jwks: { cache_ttl: "100ms", min_refetch_interval: "0" } }),
      dead: jwtAt("http://127.0.0.1:1/jwks", { jwks: { min_refetch_interval: "0", timeout: "500ms" } }),
      oidc: { type: "jwt", issuer: oidc.origin, discovery: true, strip_token: true },
      fixed: {
        type: "jwt", algorithms: ["RS256", "HS256"],
        keys: [{ pem: staticRsa.publicPem, kid: "s1" }, { secret: HMAC_SECRET, kid: "h1", alg: "HS256" }],
      },
      cookie: jwtAt(issuer.jwksUrl, { token: { cookie: "session" }, strip_token: true }),
      query: jwtAt(issuer.jwksUrl, { token: { query: "access_token" }, strip_token: true }),
      header: jwtAt(issuer.jwksUrl, { token: { header: "x-token" } }),
    },
    routes: [
      route("jwt", ["corp"]), route("strict", ["strict"]), route("flaky", ["flaky"]), route("dead", ["dead"]),
      route("oidc", ["oidc"]), route("fixed", ["fixed"]), route("cookie", ["cookie"]), route("query", ["query"]),
      route("header", ["header"]), route("optional", ["corp"], { optional: true, realm: "orders api" }),
      { ...route("ws", ["corp"]), to: "ws", websocket: true },
    ],
    clusters: { api: { endpoints: [up.origin] }, ws: { endpoints: [wsUp.origin] } },
    access_log: { headers: ["user-agent", "x-token"] },
  });
});

afterAll(async () => {
  await proxy.stop();
  for (const s of [issuer, flaky, oidc]) s.stop();
  up.stop(true);
  wsUp.stop(true);
});

const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
  fetch(`${proxy.origin}${path}`, { headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers } });
const now = () => Math.floor(Date.now() / 1000);
const good = (key = k1, extra: Record<string, unknown> = {}) => sign(key, { iss: "https://issuer.test", aud: "orders", sub: "alice", ...extra });

async function expect401(res: Response, description: string | RegExp): Promise<void> {
  expect(res.status).toBe(401);
  const challenge = res.headers.get("www-authenticate") ?? "";
  expect(challenge).toStartWith('Bearer realm="switchyard", error="invalid_token", error_description="');
  const body = await errorOf(res);
  expect(body.error).toBe("invalid_token");
  expect(body.request_id).toBeString();
  if (typeof description === "string") {
    expect(body.message).toBe(description);
    expect(challenge).toContain(`error_description="${description}"`);
  } else expect(body.message).toMatch(description);
}

describe("valid tokens", () => {
  test("a good token passes; claims are forwarded as headers and client-sent copies removed", async () => {
    up.seen.length = 0;
    const token = await good(k1, { org: { team: "payments" } });
    const res = await get("/jwt/x", token, { "x-user-id": "mallory", "x-team": "spoofed" });
    expect(res.status).toBe(200);
    expect(up.seen[0]!.headers["x-user-id"]).toBe("alice");
    expect(up.seen[0]!.headers["x-team"]).toBe("payments");
    expect(up.seen[0]!.headers.authorization).toBe(`Bearer ${token}`); // not stripped on this route
  });

  test("forwarded claims: arrays joined, anything outside visible ASCII percent-encoded (no header injection)", async () => {
    up.seen.length = 0;
    const token = await good(k1, { name: "José\r\nx-admin: true", groups: ["ops", "dev"] });
    expect((await get("/jwt/x", token)).status).toBe(200);
    expect(up.seen[0]!.headers["x-user-name"]).toBe("Jos%C3%A9%0D%0Ax-admin%3A%20true");
    expect(up.seen[0]!.headers["x-admin"]).toBeUndefined();
    expect(up.seen[0]!.headers["x-groups"]).toBe("ops,dev");
  });

  test("an ES256 key of the same JWKS; a token just past exp but within clock_skew", async () => {
    expect((await get("/jwt/x", await good(ec))).status).toBe(200);
    expect((await get("/jwt/x", await good(k1, { exp: now() - 10 }))).status).toBe(200);
  });

  test("required claims: exact values, lists, scope strings", async () => {
    expect((await get("/strict", await good(k1, { scope: "orders:read orders:write", tenant: "globex" }))).status).toBe(200);
    await expect401(await get("/strict", await good(k1, { scope: "orders:read", tenant: "acme" })), "the token's scope claim does not have a required value");
    await expect401(await get("/strict", await good(k1, { scope: "orders:write", tenant: "initech" })), "the token's tenant claim does not have a required value");
    await expect401(await get("/strict", await good(k1, { scope: "orders:write" })), "the token's tenant claim does not have a required value");
  });
});

describe("bad tokens: 401 invalid_token with WWW-Authenticate, never forwarded", () => {
  test("no token: 401 with a bare challenge (RFC 6750 §3.1); another scheme counts as none", async () => {
    up.seen.length = 0;
    for (const res of [await get("/jwt/x"), await get("/jwt/x", undefined, { authorization: "Basic YWxpY2U6cHc=" })]) {
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="switchyard"');
      const body = await errorOf(res);
      expect(body.error).toBe("unauthenticated");
      expect(body.message).toContain("authorization: Bearer <token>");
    }
    expect(up.seen).toHaveLength(0);
  });

  test("expired, not yet valid, wrong issuer, wrong audience, no exp", async () => {
    await expect401(await get("/jwt/x", await good(k1, { exp: now() - 120 })), "the token has expired");
    await expect401(await get("/jwt/x", await good(k1, { nbf: now() + 3600 })), "the token is not valid yet");
    await expect401(await get("/jwt/x", await good(k1, { iss: "https://evil.test" })), "the token's issuer is not accepted");
    await expect401(await get("/jwt/x", await good(k1, { aud: "billing" })), "the token's audience is not accepted");
    await expect401(await get("/jwt/x", await good(k1, { exp: undefined })), "the token has no valid exp claim");
    expect(up.seen.filter((s) => s.url.pathname === "/jwt/x" && s.headers["x-user-id"] !== "alice")).toHaveLength(0);
  });

  test("alg none, tampered payload, signature by an unknown key with a known kid", async () => {
    const header = b64url(JSON.stringify({ alg: "none", typ: "JWT" }));
    const payload = b64url(JSON.stringify({ iss: "https://issuer.test", aud: "orders", sub: "root", exp: now() + 600 }));
    await expect401(await get("/jwt/x", `${header}.${payload}.`), "the token's algorithm is not accepted");
    const [h, , s] = (await good()).split(".");
    await expect401(await get("/jwt/x", `${h}.${payload}.${s}`), "the token's signature does not verify");
    const impostor = await signingKey("k1");
    await expect401(await get("/jwt/x", await good(impostor)), "the token's signature does not verify");
  });

  test("algorithm confusion: HS256 signed with the issuer's public key as the HMAC secret", async () => {
    const forge = (kid: string, pem: string) => {
      const signingInput = `${b64url(JSON.stringify({ alg: "HS256", kid }))}.${b64url(JSON.stringify({ iss: "https://issuer.test", aud: "orders", sub: "root", exp: now() + 600 }))}`;
      return `${signingInput}.${createHmac("sha256", pem).update(signingInput).digest("base64url")}`;
    };
    // A provider that allows only asymmetric algorithms refuses HS256 outright…
    await expect401(await get("/jwt/x", forge("k1", k1.publicPem)), "the token's algorithm is not accepted");
    // …and one that allows both never uses the RSA key as an HMAC secret.
    await expect401(await get("/fixed", forge("s1", staticRsa.publicPem)), /no key matches|signature does not verify/);
  });

  test("garbage, oversize and empty tokens", async () => {
    for (const garbage of ["abc", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.%%%.xx", b64url("{}") + "." + b64url("[]") + ".x"]) {
      await expect401(await get("/jwt/x", garbage), /malformed|not accepted|not supported|signature does not verify/);
    }
    await expect401(await get("/jwt/x", "x".repeat(9000)), "the token is over 8192 bytes");
    await expect401(await get("/jwt/x", undefined, { authorization: "Bearer" }), "the token is empty");
  });
});

describe("the issuer's keys", () => {
  test("a flood of unknown kids costs the issuer at most one fetch per min_refetch_interval", async () => {
    expect((await get("/jwt/x", await good())).status).toBe(200); // keys held
    // Past the 1 s interval since the last fetch (the provider's clock is its own): one refetch is allowed.
    await waitFor("min_refetch_interval since the last fetch", () => performance.now() - issuer.lastJwksAt > 1000, 3000);
    const before = issuer.calls.jwks;
    const stranger = await signingKey("nobody");
    const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => sign(stranger, { iss: "https://issuer.test", aud: "orders" }, { kid: `bogus-${i}` })));
    const answers = await Promise.all(tokens.map((t) => get("/jwt/x", t)));
    expect(answers.map((r) => r.status)).toEqual(Array(30).fill(401));
    expect(issuer.calls.jwks - before).toBe(1);
    expect(((await answers[0]!.json()) as { message: string }).message).toBe("no key matches the token's kid and alg");
  });

  test("key rotation: a token with a new kid is accepted once the JWKS has it (after the interval)", async () => {
    issuer.keys = [k1.publicJwk, ec.publicJwk, k2.publicJwk];
    const before = issuer.calls.jwks;
    // Refused (and not fetched for: rate-limited) until min_refetch_interval has passed; then one fetch, and it passes.
    const token = await good(k2);
    await waitFor("the new kid accepted", async () => (await get("/jwt/x", token)).status === 200, 2500);
    expect(issuer.calls.jwks - before).toBe(1);
    expect((await get("/jwt/x", await good(k2))).status).toBe(200);
    expect(issuer.calls.jwks - before).toBe(1); // held now
  });

  test("the JWKS endpoint going down keeps the keys held; never reached at all is 503 auth_unavailable", async () => {
    expect((await get("/flaky", await good())).status).toBe(200);
    flaky.down = true;
    const before = flaky.calls.jwks;
    // Distinct tokens: each is verified (a remembered token would not need the keys at all).
    const verified = async () => expect((await get("/flaky", await good(k1, { jti: crypto.randomUUID() }))).status).toBe(200);
    // Past cache_ttl (100 ms) a verification starts a background refresh, which fails; the keys held still verify.
    await waitFor("a failed refresh", async () => (await verified(), flaky.calls.jwks > before));
    for (let i = 0; i < 3; i++) await verified();
    flaky.down = false;

    const res = await get("/dead", await good());
    expect(res.status).toBe(503);
    const body = await errorOf(res);
    expect(body.error).toBe("auth_unavailable");
    expect(body.message).toContain("the issuer's keys could not be fetched");
  });

  test("OIDC discovery finds the JWKS through the issuer's metadata (fetched once), and the token is stripped", async () => {
    up.seen.length = 0;
    const token = await sign(k1, { iss: oidc.origin, sub: "bob" });
    for (let i = 0; i < 3; i++) expect((await get("/oidc", token)).status).toBe(200);
    expect(oidc.calls.discovery).toBe(1);
    expect(oidc.calls.jwks).toBe(1);
    expect(up.seen.every((s) => s.headers.authorization === undefined)).toBe(true);
    await expect401(await get("/oidc", await sign(k1, { iss: issuer.origin })), "the token's issuer is not accepted");
  });

  test("static keys: a PEM key and an HMAC secret, each for its own algorithms", async () => {
    expect((await get("/fixed", await sign(staticRsa, {}))).status).toBe(200);
    const hs = { kid: "h1", alg: "HS256", privateKey: new TextEncoder().encode(HMAC_SECRET) } as unknown as SigningKey;
    expect((await get("/fixed", await sign(hs, {}))).status).toBe(200);
    const wrongSecret = { ...hs, privateKey: new TextEncoder().encode("another-secret-of-at-least-32-bytes!!") } as unknown as SigningKey;
    await expect401(await get("/fixed", await sign(wrongSecret, {})), "the token's signature does not verify");
    await expect401(await get("/fixed", await sign(await signingKey("s1", "ES256"), {})), /no key matches|algorithm is not accepted/);
  });
});

describe("token sources, optional auth, WebSockets and the access log", () => {
  test("cookie and query tokens are read and stripped; a custom header too", async () => {
    up.seen.length = 0;
    const token = await good();
    expect((await get("/cookie", undefined, { cookie: `theme=dark; session=${token}; lang=en` })).status).toBe(200);
    expect(up.seen[0]!.headers.cookie).toBe("theme=dark; lang=en");
    expect((await get(`/query?a=1&access_token=${token}&b=2`)).status).toBe(200);
    expect(up.seen[1]!.url.search).toBe("?a=1&b=2");
    expect((await get("/header", undefined, { "x-token": token })).status).toBe(200);
    expect((await get("/header", token)).status).toBe(401); // Authorization is not where this provider looks
  });

  test("a query token given twice is refused: the upstream could read the other, unverified one", async () => {
    const seen = up.seen.length;
    const token = await good();
    const forged = `${b64url('{"alg":"none"}')}.${b64url('{"sub":"admin"}')}.`;
    for (const query of [`access_token=${token}&access_token=${forged}`, `access_token=${forged}&access_token=${token}`, `access_token=${token}&access%5Ftoken=${forged}`]) {
      await expect401(await get(`/query?${query}`), "the token is given more than once");
    }
    expect(up.seen.length).toBe(seen);
  });

  test("optional: no token passes unauthenticated (spoofed claim headers removed); a bad one is still 401", async () => {
    up.seen.length = 0;
    const res = await get("/optional", undefined, { "x-user-id": "admin" });
    expect(res.status).toBe(200);
    expect(up.seen[0]!.headers["x-user-id"]).toBeUndefined();
    const bad = await get("/optional", "garbage");
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toStartWith('Bearer realm="orders api", error="invalid_token"');
  });

  test("a WebSocket upgrade without a token is refused before any upstream; with one it opens", async () => {
    const refused = await rawWsClient(proxy.port, "/ws");
    expect(refused.head).toStartWith("HTTP/1.1 401");
    expect(refused.head.toLowerCase()).toContain('www-authenticate: bearer realm="switchyard"');
    refused.socket.destroy();
    const client = wsClient(`ws://127.0.0.1:${proxy.port}/ws`, { headers: { authorization: `Bearer ${await good()}` } });
    await client.opened;
    client.ws.send("hi");
    expect((await client.next("message")).data).toBe("echo:hi");
    client.ws.close();
  });

  test("the access log names the provider and subject and never holds a token", async () => {
    const token = await good(k1, { sub: "carol" });
    const tokens = [token, await good(k1, { sub: "dave" }), await good(k1, { exp: now() - 999 })];
    const a = await get("/jwt/x", tokens[0], { "x-request-id": "jwt-log-a" });
    await get(`/query?access_token=${tokens[1]}`, undefined, { "x-request-id": "jwt-log-b" });
    await get("/header", undefined, { "x-token": tokens[2]!, "x-request-id": "jwt-log-c" });
    expect(a.status).toBe(200);
    expect(await proxy.logOf("jwt-log-a")).toMatchObject({ auth: { provider: "corp", subject: "carol" } });
    expect(await proxy.logOf("jwt-log-b")).toMatchObject({ path: "/query?access_token=[redacted]", auth: { provider: "query", subject: "dave" } });
    const c = await proxy.logOf("jwt-log-c");
    expect(c).toMatchObject({ status: 401, error: "invalid_token", headers: { "x-token": "[redacted]" } });
    expect(c.auth).toBeUndefined();
    const text = (await proxy.logLines()).map((l) => JSON.stringify(l)).join("\n");
    for (const t of tokens) expect(text).not.toContain(t.split(".")[2]!);
  });
});

describe("config", () => {
  const check = (auth: string, filters = "[{type: auth, providers: [p]}]") =>
    validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nauth: ${auth}\nroutes: [{to: a, filters: ${filters}}]\n`));

  test("unknown providers are named with the known ones", () => {
    expect(() => check("{p: {type: jwt, jwks_url: 'https://i.test/jwks'}}", "[{type: auth, providers: [p, q]}]")).toThrow(
      'routes[0].filters[0].providers[1]: unknown auth provider "q" (known: p)',
    );
    expect(() => check("{}")).toThrow('unknown auth provider "p" (no auth providers are defined)');
  });

  test("alg none, HS with a JWKS, key sources and discovery are checked", () => {
    expect(() => check("{p: {type: jwt, jwks_url: 'https://i.test/jwks', algorithms: [none]}}")).toThrow("auth.p.algorithms[0]: alg none is never accepted");
    expect(() => check("{p: {type: jwt, jwks_url: 'https://i.test/jwks', algorithms: [RS256, HS256]}}")).toThrow("auth.p.algorithms: HS256 need a shared secret in keys");
    expect(() => check("{p: {type: jwt}}")).toThrow("auth.p.jwks_url: give exactly one of jwks_url, discovery: true (with issuer) or keys");
    expect(() => check("{p: {type: jwt, discovery: true}}")).toThrow("auth.p.issuer: discovery needs the issuer URL");
    expect(() => check("{p: {type: jwt, keys: [{pem: 'nope'}]}}")).toThrow("auth.p.keys[0].pem: not a PEM public key or certificate");
    expect(() => check("{p: {type: jwt, keys: [{secret: short}]}}")).toThrow("at least 32 bytes");
    expect(() => check("{p: {type: jwt, keys: [{jwk: {kty: RSA, n: AQAB, e: AQAB, d: AQAB}}]}}")).toThrow("this is a private key");
    expect(() => check("{p: {type: jwt, jwks_url: 'https://i.test/jwks', token: {header: x, cookie: y}}}")).toThrow("auth.p.token: give exactly one of header, cookie or query");
    expect(() => check("{p: {type: jwt, jwks_url: 'https://i.test/jwks', colour: red}}")).toThrow('auth.p: unknown key "colour"');
  });

  test("a key file that cannot be read refuses the config at build time; a reload keeps the last good one", async () => {
    const config = check("{p: {type: jwt, keys: [{file: /nonexistent/keys.json}]}}");
    expect(() => buildRuntime(config, 1)).toThrow("key file /nonexistent/keys.json: cannot read it (ENOENT)");
    const running = JSON.parse(await Bun.file(proxy.configFile).text());
    running.auth.fixed.keys.push({ file: "/nonexistent/keys.json" });
    proxy.writeConfig(running);
    expect(await proxy.running.reload()).toBe(false);
    expect((await get("/jwt/x", await good())).status).toBe(200);
  });
});

test("verified tokens are remembered up to cache.max_ttl: a key gone from the JWKS stops a token only when its entry ends", async () => {
  const [a, b] = [await signingKey("cache-a"), await signingKey("cache-b")];
  const iss = startIssuer([a.publicJwk]);
  const upstream = startUpstream(() => new Response("ok"));
  const jwks = { min_refetch_interval: "0", cache_ttl: "10m" };
  const p = await startProxy({
    auth: {
      remembering: { type: "jwt", jwks_url: iss.jwksUrl, jwks, cache: { max_ttl: "1s" } },
      forgetful: { type: "jwt", jwks_url: iss.jwksUrl, jwks, cache: { max_ttl: "0" } },
    },
    routes: [
      { name: "remembering", match: { path: { prefix: "/r" } }, to: "up", filters: [{ type: "auth", providers: ["remembering"] }] },
      { name: "forgetful", match: { path: { prefix: "/f" } }, to: "up", filters: [{ type: "auth", providers: ["forgetful"] }] },
    ],
    clusters: { up: { endpoints: [upstream.origin] } },
  });
  const call = (path: string, token: string) => fetch(`${p.origin}${path}`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
  try {
    const tokenA = await sign(a, { sub: "alice" });
    const tokenB = await sign(b, { sub: "bob" });
    expect([await call("/r", tokenA), await call("/f", tokenA)]).toEqual([200, 200]);
    // Key a is rotated out; a token with the new kid makes both providers fetch the JWKS again.
    iss.keys = [b.publicJwk];
    expect([await call("/r", tokenB), await call("/f", tokenB)]).toEqual([200, 200]);
    expect(await call("/f", tokenA)).toBe(401); // verified anew: its key is gone
    expect(await call("/r", tokenA)).toBe(200); // remembered (by digest), within max_ttl
    // Remembered until its entry ends (max_ttl 1 s, not refreshed by use), then verified anew: its key is gone.
    await waitFor("the remembered token's entry ended", async () => (await call("/r", tokenA)) === 401, 2500);
  } finally {
    await p.stop();
    upstream.stop(true);
    iss.stop();
  }
});
