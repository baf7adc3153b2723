/** Rate limits keyed on who the auth filter accepted: API-key names and tiers, JWT claims and a plan claim as tier. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sha256Hex } from "../../src/filters/auth/api-key.ts";
import { sign, type SigningKey } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const KEYS = { acme: "acme-live-7c1d9e2f4a6b", globex: "globex-live-0b3e5a7c9d1f", initech: "initech-live-2d4f6a8c0e1b" };
const SECRET = "rate-limit-test-hmac-secret-32-bytes!";
let up: Upstream;
let proxy: TestProxy;
let hmac: SigningKey;

beforeAll(async () => {
  up = startUpstream(() => new Response("ok"));
  hmac = { kid: "k1", alg: "HS256", privateKey: new TextEncoder().encode(SECRET) } as unknown as SigningKey; // jose signs HS256 with the raw secret
  proxy = await startProxy({
    auth: {
      keys: {
        type: "api_key",
        keys: [
          { name: "acme", tier: "free", sha256: sha256Hex(KEYS.acme) },
          { name: "globex", tier: "premium", sha256: sha256Hex(KEYS.globex) },
          { name: "initech", sha256: sha256Hex(KEYS.initech) }, // no tier: the default one
        ],
      },
      tokens: { type: "jwt", algorithms: ["HS256"], keys: [{ secret: SECRET }] },
    },
    rate_limits: {
      "per-key": { key: "api_key", tiers: { from: "auth_tier", default: "free", levels: { free: { rate: "2/min" }, premium: { rate: "5/min" } } } },
      "per-user": { key: { claim: "sub" }, tiers: { from: { claim: "plan" }, default: "basic", levels: { basic: { rate: "1/min" }, pro: { rate: "3/min" } } } },
    },
    routes: [
      { name: "keyed", match: { path: { prefix: "/keyed" } }, to: "up", filters: [{ type: "auth", providers: ["keys"] }, { type: "rate_limit", limits: ["per-key"] }] },
      { name: "tokens", match: { path: { prefix: "/tokens" } }, to: "up", filters: [{ type: "auth", providers: ["tokens"] }, { type: "rate_limit", limits: ["per-user"] }] },
    ],
    clusters: { up: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

const burst = async (path: string, headers: Record<string, string>, n: number) => {
  const out: Response[] = [];
  for (let i = 0; i < n; i++) out.push(await fetch(`${proxy.origin}${path}`, { headers }));
  return out;
};

test("API keys: each key its own bucket, its tier's rate (free 2/min, premium 5/min, none → the default)", async () => {
  const acme = await burst("/keyed", { "x-api-key": KEYS.acme }, 3);
  expect(acme.map((r) => r.status)).toEqual([200, 200, 429]);
  expect(acme[0]!.headers.get("ratelimit-policy")).toBe('"per-key";q=2;w=60');
  const globex = await burst("/keyed", { "x-api-key": KEYS.globex }, 6);
  expect(globex.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429]);
  expect(globex[0]!.headers.get("ratelimit-policy")).toBe('"per-key";q=5;w=60');
  expect((await burst("/keyed", { "x-api-key": KEYS.initech }, 3)).map((r) => r.status)).toEqual([200, 200, 429]);
});

test("an unauthenticated request is refused by auth before it can use anyone's bucket", async () => {
  const res = await fetch(`${proxy.origin}/keyed`, { headers: { "x-api-key": "not-a-key" } });
  expect(res.status).toBe(401);
  expect(res.headers.get("ratelimit")).toBeNull();
});

test("JWT: keyed by the sub claim, the plan claim picks the tier; a new token for the same sub shares the bucket", async () => {
  const token = (sub: string, plan?: string) => sign(hmac, { sub, ...(plan ? { plan } : {}) });
  const alice = await burst("/tokens", { authorization: `Bearer ${await token("alice", "pro")}` }, 4);
  expect(alice.map((r) => r.status)).toEqual([200, 200, 200, 429]);
  expect(alice[3]!.headers.get("ratelimit")).toBe('"per-user";r=0;t=20');
  const bob = await burst("/tokens", { authorization: `Bearer ${await token("bob")}` }, 2);
  expect(bob.map((r) => r.status)).toEqual([200, 429]); // no plan: basic, 1/min
  const bobAgain = await fetch(`${proxy.origin}/tokens`, { headers: { authorization: `Bearer ${await token("bob", "unknown-plan")}` } });
  expect(bobAgain.status).toBe(429); // an unknown plan is the default tier: the same bucket
});
