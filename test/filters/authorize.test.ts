/**
 * Authorization rules: the pure rule compiler over hand-made request facts (claims, API-key names
 * and tiers, client certificates, addresses, methods), then the filter through the proxy after an
 * auth filter.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { type AuthorizeFacts, compileRules, globRegex } from "../../src/filters/authorize/rules.ts";
import { RuleSchema } from "../../src/filters/authorize/schema.ts";
import type { AuthIdentity } from "../../src/proxy/context.ts";
import { sha256Hex } from "../../src/filters/auth/api-key.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { errorOf } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { recordingUpstream } from "../helpers/upstream.ts";
import type { ClientIdentity } from "../../src/security/client-identity.ts";

const rules = (...raw: unknown[]) => compileRules(raw.map((r) => RuleSchema.parse(r)));
const facts = (f: Partial<AuthorizeFacts> = {}): AuthorizeFacts => ({ method: "GET", clientIp: "203.0.113.9", ...f });
const jwt = (claims: Record<string, unknown>): AuthIdentity => ({ provider: "corp", kind: "jwt", subject: String(claims.sub ?? ""), claims });
const key = (name: string, tier?: string): AuthIdentity => ({ provider: "keys", kind: "api_key", subject: name, tier });
const cert: ClientIdentity = {
  subject: "CN=billing,O=Example,C=SE",
  sans: ["billing.internal.example"],
  uris: ["spiffe://prod.example/ns/payments/sa/billing"],
  fingerprint256: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
};

describe("the rule compiler", () => {
  test("first match wins; no match denies", () => {
    const decide = rules({ deny: true, when: { methods: ["DELETE"] } }, { allow: true, when: { authenticated: true } });
    expect(decide(facts({ auth: key("a") }))).toEqual({ allow: true, rule: 1 });
    expect(decide(facts({ auth: key("a"), method: "DELETE" }))).toEqual({ allow: false, rule: 0 });
    expect(decide(facts())).toEqual({ allow: false, rule: undefined });
    expect(rules({ allow: true })(facts())).toEqual({ allow: true, rule: 0 }); // no `when`: every request
  });

  test("claims: exact values, any of a list, arrays, scope strings, dotted paths; every entry must hold", () => {
    const decide = rules({ allow: true, when: { claims: { role: ["admin", "ops"], scope: "orders:write", "org.id": 42 } } });
    expect(decide(facts({ auth: jwt({ role: "ops", scope: "orders:read orders:write", org: { id: 42 } }) })).allow).toBe(true);
    expect(decide(facts({ auth: jwt({ role: ["viewer", "admin"], scope: "orders:write", org: { id: 42 } }) })).allow).toBe(true);
    expect(decide(facts({ auth: jwt({ role: "viewer", scope: "orders:write", org: { id: 42 } }) })).allow).toBe(false);
    expect(decide(facts({ auth: jwt({ role: "admin", scope: "orders:writer", org: { id: 42 } }) })).allow).toBe(false);
    expect(decide(facts({ auth: jwt({ role: "admin", scope: "orders:write", org: { id: "42" } }) })).allow).toBe(false); // types are exact
    expect(decide(facts({ auth: jwt({ role: "admin", scope: "orders:write" }) })).allow).toBe(false);
    expect(decide(facts({ auth: key("admin") })).allow).toBe(false); // an API key has no claims
    expect(decide(facts()).allow).toBe(false);
  });

  test("API-key names and tiers; providers; unauthenticated callers", () => {
    const decide = rules(
      { allow: true, when: { api_key_tiers: ["premium"] } },
      { allow: true, when: { api_key_names: ["acme"], methods: ["GET", "HEAD"] } },
      { allow: true, when: { providers: ["corp"], claims: { sub: "svc" } } },
      { allow: true, when: { authenticated: false, methods: ["OPTIONS"] } },
    );
    expect(decide(facts({ auth: key("globex", "premium"), method: "POST" })).allow).toBe(true);
    expect(decide(facts({ auth: key("acme", "free") })).allow).toBe(true);
    expect(decide(facts({ auth: key("acme", "free"), method: "POST" })).allow).toBe(false);
    expect(decide(facts({ auth: jwt({ sub: "svc" }) })).allow).toBe(true);
    expect(decide(facts({ auth: { ...jwt({ sub: "svc" }), provider: "other" } })).allow).toBe(false);
    expect(decide(facts({ auth: { provider: "x", kind: "jwt", subject: "acme", tier: "premium", claims: {} } })).allow).toBe(false); // names and tiers are API-key facts
    expect(decide(facts({ method: "OPTIONS" })).allow).toBe(true);
    expect(decide(facts({ method: "OPTIONS", auth: key("zed") })).allow).toBe(false);
  });

  test("client certificates: subject, URI and DNS SAN patterns, fingerprints; no certificate never matches", () => {
    const spiffe = rules({ allow: true, when: { client_cert: { uri: ["spiffe://prod.example/ns/payments/*"] } } });
    expect(spiffe(facts({ clientCert: cert })).allow).toBe(true);
    expect(spiffe(facts({ clientCert: { ...cert, uris: ["spiffe://prod.example/ns/web/sa/x"] } })).allow).toBe(false);
    expect(spiffe(facts({ clientCert: { ...cert, uris: ["spiffe://prod.example/ns/payments"] } })).allow).toBe(false);
    expect(spiffe(facts({ clientCert: { ...cert, uris: ["xspiffe://prod.example/ns/payments/a"] } })).allow).toBe(false); // anchored
    expect(spiffe(facts()).allow).toBe(false);
    const subject = rules({ allow: true, when: { client_cert: { subject: ["CN=billing,*"], san: ["*.internal.example"] } } });
    expect(subject(facts({ clientCert: cert })).allow).toBe(true);
    expect(subject(facts({ clientCert: { ...cert, subject: "CN=billing-evil,O=Example" } })).allow).toBe(false);
    expect(subject(facts({ clientCert: { ...cert, sans: ["billing.internal.example.evil.com"] } })).allow).toBe(false);
    const pinned = rules({ allow: true, when: { client_cert: { fingerprint: [cert.fingerprint256.replace(/:/g, "").toLowerCase()] } } });
    expect(pinned(facts({ clientCert: cert })).allow).toBe(true);
    expect(pinned(facts({ clientCert: { ...cert, fingerprint256: cert.fingerprint256.replace(/^AB/, "AC") } })).allow).toBe(false);
    expect(globRegex("a.b*").test("aXb")).toBe(false); // only * is special
  });

  test("client addresses (IPv4, IPv6, mapped) and methods", () => {
    const decide = rules({ deny: true, when: { client_ip: ["10.0.0.0/8"], methods: ["DELETE"] } }, { allow: true, when: { client_ip: ["10.0.0.0/8", "2001:db8::/32"] } });
    expect(decide(facts({ clientIp: "10.1.2.3" })).allow).toBe(true);
    expect(decide(facts({ clientIp: "::ffff:10.1.2.3" })).allow).toBe(true);
    expect(decide(facts({ clientIp: "2001:db8::1" })).allow).toBe(true);
    expect(decide(facts({ clientIp: "10.1.2.3", method: "DELETE" }))).toEqual({ allow: false, rule: 0 });
    expect(decide(facts({ clientIp: "11.0.0.1" })).allow).toBe(false);
    expect(decide(facts({ clientIp: "garbage" })).allow).toBe(false);
  });

  test("bad rules are config errors with their path", () => {
    const check = (rule: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nauth: {p: {type: api_key, keys: [{name: a, sha256: ${sha256Hex("a")}}]}}\nroutes: [{to: a, filters: [{type: authorize, rules: [${rule}]}]}]\n`));
    expect(() => check("{when: {methods: [GET]}}")).toThrow("routes[0].filters[0].rules[0]: give exactly one of allow: true or deny: true");
    expect(() => check("{allow: true, deny: true}")).toThrow("give exactly one of allow: true or deny: true");
    expect(() => check("{allow: true, when: {client_ip: [10.0.0.0/33]}}")).toThrow("routes[0].filters[0].rules[0].when.client_ip[0]: must be an IP address or a CIDR range");
    expect(() => check("{allow: true, when: {providers: [q]}}")).toThrow('routes[0].filters[0].rules[0].when.providers[0]: unknown auth provider "q" (known: p)');
    expect(() => check("{allow: true, when: {paths: [/x]}}")).toThrow('unknown key "paths"');
    expect(() => validateConfig("t.yaml", parseText("t.yaml", "listeners: [{port: 8080}]\nclusters: {a: {endpoints: ['127.0.0.1:1']}}\nroutes: [{to: a, filters: [{type: authorize, rules: []}]}]\n"))).toThrow("rules");
  });
});

describe("through the proxy", () => {
  let up: ReturnType<typeof recordingUpstream>;
  let proxy: TestProxy;
  beforeAll(async () => {
    up = recordingUpstream();
    proxy = await startProxy({
      auth: {
        keys: { type: "api_key", keys: [{ name: "acme", tier: "free", sha256: sha256Hex("acme-key") }, { name: "globex", tier: "premium", sha256: sha256Hex("globex-key") }] },
      },
      routes: [{
        name: "orders", match: { path: { prefix: "/orders" } }, to: "api",
        filters: [
          { type: "auth", providers: ["keys"], optional: true },
          {
            type: "authorize",
            rules: [
              { allow: true, when: { authenticated: false, methods: ["GET"], client_ip: ["127.0.0.0/8"] } },
              { deny: true, when: { methods: ["DELETE"] } },
              { allow: true, when: { api_key_tiers: ["premium"] } },
              { allow: true, when: { api_key_names: ["acme"], methods: ["GET"] } },
            ],
          },
        ],
      }],
      clusters: { api: { endpoints: [up.origin] } },
    });
  });
  afterAll(async () => {
    await proxy.stop();
    up.stop(true);
  });

  const call = (method: string, key?: string) => fetch(`${proxy.origin}/orders/1`, { method, headers: key === undefined ? {} : { "x-api-key": key } });

  test("allowed requests reach the upstream; denied ones get 403 forbidden naming the rule, and do not", async () => {
    up.seen.length = 0;
    const denied = metrics.authorizeDecisions.value(["orders", "denied"]);
    expect((await call("GET")).status).toBe(200); // anonymous reads from loopback
    expect((await call("POST", "globex-key")).status).toBe(200);
    expect((await call("GET", "acme-key")).status).toBe(200);
    expect(up.seen).toHaveLength(3);
    const cases: [string, string | undefined, string][] = [
      ["DELETE", "globex-key", "denied by rule 1"],
      ["POST", "acme-key", "no rule allows this request"],
      ["POST", undefined, "no rule allows this request"],
    ];
    for (const [method, k, message] of cases) {
      const res = await call(method, k);
      expect(res.status).toBe(403);
      const body = await errorOf(res);
      expect([body.error, body.message]).toEqual(["forbidden", message]);
      expect(body.request_id).toBeString();
    }
    expect(up.seen).toHaveLength(3);
    expect(metrics.authorizeDecisions.value(["orders", "denied"]) - denied).toBe(3);
    // Authentication still comes first: a wrong key is 401, not 403.
    expect((await call("GET", "nope")).status).toBe(401);
  });
});
