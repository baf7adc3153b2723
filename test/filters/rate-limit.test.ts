/** Rate limits without sockets: GCRA arithmetic, bounded buckets on a controlled clock, keys, tiers, headers, config errors. */
import { expect, test } from "bun:test";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { gcra, shapeOf } from "../../src/filters/rate-limit/gcra.ts";
import { retryAfterSeconds, serviceLimitItem } from "../../src/filters/rate-limit/headers.ts";
import { compileKey, compileTierOf } from "../../src/filters/rate-limit/key.ts";
import { Limiter } from "../../src/filters/rate-limit/limiter.ts";
import { LocalBuckets } from "../../src/filters/rate-limit/local-buckets.ts";
import { parseRate, RateLimitSchema } from "../../src/filters/rate-limit/schema.ts";
import { shareOf } from "../../src/filters/rate-limit/shared-buckets.ts";
import type { AuthIdentity, ProxyContext } from "../../src/proxy/context.ts";

/** A hand-made context with just what key extraction reads. */
function fakeCtx(opts: { ip?: string; headers?: Record<string, string>; auth?: AuthIdentity; route?: string } = {}): ProxyContext {
  return {
    clientIp: opts.ip ?? "203.0.113.7",
    headers: new Headers(opts.headers ?? {}),
    auth: opts.auth,
    route: opts.route === undefined ? undefined : { name: opts.route },
  } as unknown as ProxyContext;
}

const clock = () => {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
};

test("rates: count per unit, multiples of units; nonsense refused", () => {
  expect(parseRate("60/min")).toEqual({ count: 60, windowSeconds: 60 });
  expect(parseRate("10/s")).toEqual({ count: 10, windowSeconds: 1 });
  expect(parseRate("1000/h")).toEqual({ count: 1000, windowSeconds: 3600 });
  expect(parseRate("5000/day")).toEqual({ count: 5000, windowSeconds: 86_400 });
  expect(parseRate("100 / 15min")).toEqual({ count: 100, windowSeconds: 900 });
  for (const bad of ["60", "0/s", "10/0s", "-1/s", "1.5/s", "10/fortnight", "10/ms", "/s", "ten/s"]) expect(parseRate(bad)).toBeUndefined();
});

test("GCRA: a full bucket admits `burst` at once, then one per emission interval", () => {
  const shape = shapeOf(60, 60, 5); // 1 per second, burst 5
  const now = 1000;
  let tat: number | undefined;
  const remaining: number[] = [];
  for (let i = 0; i < 5; i++) {
    const v = gcra(tat, now, shape);
    expect(v.allowed).toBe(true);
    remaining.push(v.remaining);
    tat = v.tat;
  }
  expect(remaining).toEqual([4, 3, 2, 1, 0]);
  const refused = gcra(tat, now, shape);
  expect(refused).toMatchObject({ allowed: false, remaining: 0, retryMs: 1000, resetMs: 5000 });
  expect(gcra(tat, now + 999, shape).allowed).toBe(false);
  expect(gcra(tat, now + 1000, shape)).toMatchObject({ allowed: true, remaining: 0 });
  // Idle long enough, the bucket is full again (the stored TAT is in the past).
  expect(gcra(tat, now + 60_000, shape)).toMatchObject({ allowed: true, remaining: 4, resetMs: 1000 });
});

test("local buckets: per key, refilled by the (injected) clock", () => {
  const c = clock();
  const buckets = new LocalBuckets("t", 100, undefined, c.now);
  const shape = shapeOf(2, 1, 2); // 2/s, burst 2
  const take = (key: string) => buckets.take(key, shape).allowed;
  expect([take("a"), take("a"), take("a")]).toEqual([true, true, false]);
  expect(take("b")).toBe(true); // another key, another bucket
  c.t += 499;
  expect(take("a")).toBe(false);
  c.t += 1;
  expect(take("a")).toBe(true);
  expect(take("a")).toBe(false);
});

test("a flood of 200,000 distinct keys keeps at most max_keys buckets; the dropped live ones are counted", () => {
  const c = clock();
  let evicted = 0;
  const buckets = new LocalBuckets("unit-flood", 10_000, () => evicted++, c.now);
  const shape = shapeOf(10, 1, 10);
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < 200_000; i++) {
    buckets.take(`198.51.${(i >> 8) & 255}.${i & 255}:${i}`, shape);
    if (i % 1000 === 0) c.t += 1; // time passes, but not enough to refill these buckets
  }
  expect(buckets.size).toBe(10_000);
  expect(evicted).toBe(190_000);
  Bun.gc(true);
  expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(20 * 1024 * 1024);
  // The most recent keys are still limited: they kept their history.
  const recent = `198.51.${(199_999 >> 8) & 255}.${199_999 & 255}:199999`;
  for (let i = 0; i < 9; i++) expect(buckets.take(recent, shape).allowed).toBe(true);
  expect(buckets.take(recent, shape).allowed).toBe(false);
});

test("idle buckets are dropped without a cap: by each take from the old end, and by the periodic purge", () => {
  const c = clock();
  let evicted = 0;
  const buckets = new LocalBuckets("idle", 1_000_000, () => evicted++, c.now);
  const shape = shapeOf(1, 1, 1);
  for (let i = 0; i < 1000; i++) buckets.take(`k${i}`, shape);
  expect(buckets.size).toBe(1000);
  c.t += 1001; // every bucket is full again
  for (let i = 0; i < 100; i++) buckets.take(`new${i}`, shape);
  expect(buckets.size).toBeLessThan(1000); // each take dropped up to two idle ones
  buckets.purgeIdle();
  expect(buckets.size).toBe(100);
  c.t += 1001;
  buckets.purgeIdle();
  expect(buckets.size).toBe(0);
  expect(evicted).toBe(0); // nothing live was ever dropped
});

test("keys: client IP, header, claim, API-key name, route; a list combines them; missing parts name no bucket", () => {
  const jwt: AuthIdentity = { provider: "idp", kind: "jwt", subject: "u1", claims: { sub: "u1", org: "acme", n: 42, list: ["x"], empty: "" } };
  const apiKey: AuthIdentity = { provider: "keys", kind: "api_key", subject: "billing-service", tier: "premium" };
  // IPv6 clients are keyed by their /64 (a subscriber holds the whole /64 and could rotate through it).
  expect(compileKey("client_ip")(fakeCtx({ ip: "2001:db8::1" }))).toBe("2001:db8:0:0:0:0:0:0/64");
  expect(compileKey("client_ip")(fakeCtx({ ip: "2001:db8:0:0:dead:beef:1:2" }))).toBe("2001:db8:0:0:0:0:0:0/64");
  expect(compileKey("client_ip")(fakeCtx({ ip: "2001:db8:0:1::1" }))).toBe("2001:db8:0:1:0:0:0:0/64");
  expect(compileKey("client_ip", 128)(fakeCtx({ ip: "2001:db8::1" }))).toBe("2001:db8:0:0:0:0:0:1/128");
  expect(compileKey("client_ip", 48)(fakeCtx({ ip: "2001:db8:7:ffff::1" }))).toBe("2001:db8:7:0:0:0:0:0/48");
  // An IPv4 client is itself, however the socket spelled it.
  expect(compileKey("client_ip")(fakeCtx({ ip: "::ffff:10.1.2.3" }))).toBe("10.1.2.3");
  expect(compileKey("client_ip")(fakeCtx({ ip: "10.1.2.3" }))).toBe("10.1.2.3");
  expect(compileKey({ header: "X-Tenant" })(fakeCtx({ headers: { "x-tenant": "t-9" } }))).toBe("t-9");
  expect(compileKey({ header: "x-tenant" })(fakeCtx())).toBeUndefined();
  expect(compileKey({ header: "x-tenant" })(fakeCtx({ headers: { "x-tenant": "" } }))).toBeUndefined();
  expect(compileKey({ claim: "org" })(fakeCtx({ auth: jwt }))).toBe("acme");
  expect(compileKey({ claim: "n" })(fakeCtx({ auth: jwt }))).toBe("42");
  for (const claim of ["list", "empty", "missing"]) expect(compileKey({ claim })(fakeCtx({ auth: jwt }))).toBeUndefined();
  expect(compileKey({ claim: "org" })(fakeCtx())).toBeUndefined(); // no auth filter accepted anything
  expect(compileKey("api_key")(fakeCtx({ auth: apiKey }))).toBe("billing-service");
  expect(compileKey("api_key")(fakeCtx({ auth: jwt }))).toBeUndefined(); // a JWT is not an API key
  expect(compileKey("route")(fakeCtx({ route: "orders" }))).toBe("orders");
  expect(compileKey(["client_ip", "route"])(fakeCtx({ ip: "10.0.0.1", route: "orders" }))).toBe("10.0.0.1\u0000orders");
  expect(compileKey(["client_ip", { header: "x-a" }])(fakeCtx())).toBeUndefined();
  // A hostile 8 KB header value is stored as a fixed-size digest; equal values still share a bucket.
  const huge = "A".repeat(8192);
  const key = compileKey({ header: "x-tenant" })(fakeCtx({ headers: { "x-tenant": huge } }))!;
  expect(key.length).toBeLessThan(50);
  expect(compileKey({ header: "x-tenant" })(fakeCtx({ headers: { "x-tenant": huge } }))).toBe(key);
  expect(compileKey({ header: "x-tenant" })(fakeCtx({ headers: { "x-tenant": `${huge}B` } }))).not.toBe(key);
});

test("tiers come from the API key's tier or a claim", () => {
  expect(compileTierOf("auth_tier")(fakeCtx({ auth: { provider: "k", kind: "api_key", subject: "s", tier: "premium" } }))).toBe("premium");
  expect(compileTierOf("auth_tier")(fakeCtx())).toBeUndefined();
  expect(compileTierOf({ claim: "plan" })(fakeCtx({ auth: { provider: "i", kind: "jwt", claims: { plan: "free" } } }))).toBe("free");
});

const limitConfig = (raw: unknown) => RateLimitSchema.parse(raw);

test("a limiter picks the request's tier (unknown → default), and the anonymous bucket is shared", async () => {
  const c = clock();
  const config = limitConfig({
    key: { claim: "sub" },
    tiers: { from: { claim: "plan" }, default: "free", levels: { free: { rate: "2/min" }, premium: { rate: "600/min", burst: 5 } } },
  });
  const limiter = new Limiter("api", config, new LocalBuckets("api", 100, undefined, c.now), undefined);
  const user = (sub: string | undefined, plan?: string) => fakeCtx({ auth: sub === undefined ? undefined : { provider: "i", kind: "jwt", claims: { sub, ...(plan ? { plan } : {}) } } });
  const allowed = async (ctx: ProxyContext, n: number) => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const d = await limiter.check(ctx);
      if (d.kind === "verdict" && d.verdict.allowed) ok++;
    }
    return ok;
  };
  expect(await allowed(user("alice", "premium"), 10)).toBe(5); // premium: burst 5
  expect(await allowed(user("bob"), 10)).toBe(2); // no plan claim: free
  expect(await allowed(user("carol", "platinum"), 10)).toBe(2); // an unknown tier: free
  const d = await limiter.check(user("alice", "premium"));
  expect(d.kind === "verdict" && d.tier.policy).toBe('"api";q=600;w=60');
  // No identity at all: one shared anonymous bucket (missing_key defaults to anonymous).
  expect(await allowed(user(undefined), 1) + (await allowed(fakeCtx({ ip: "192.0.2.1" }), 5))).toBe(2);
});

test("missing_key: skip lets requests without the key through without a decision", async () => {
  const limiter = new Limiter("t", limitConfig({ key: { header: "x-api-key" }, missing_key: "skip", rate: "1/min" }), new LocalBuckets("t", 10), undefined);
  for (let i = 0; i < 3; i++) expect(await limiter.check(fakeCtx())).toEqual({ kind: "skipped" });
});

test("RateLimit items (draft-ietf-httpapi-ratelimit-headers-11): r remaining, t to full or to the next allowed request", () => {
  expect(serviceLimitItem("per-ip", { allowed: true, remaining: 41, resetMs: 17_200, retryMs: 0 })).toBe('"per-ip";r=41;t=18');
  expect(serviceLimitItem("per-ip", { allowed: false, remaining: 0, resetMs: 60_000, retryMs: 1_500 })).toBe('"per-ip";r=0;t=2');
  expect(retryAfterSeconds(1)).toBe(1);
  expect(retryAfterSeconds(1_500)).toBe(2);
  expect(retryAfterSeconds(20_000.000000004)).toBe(20); // float noise of now + e − now
  expect(serviceLimitItem("a", { allowed: true, remaining: 2, resetMs: 20_000.000000004, retryMs: 0 })).toBe('"a";r=2;t=20');
});

test("a worker's fallback share is 1/N of rate and burst, at least one request", () => {
  const shape = shapeOf(60, 60, 10);
  expect(shareOf(shape, 2)).toEqual({ emissionMs: 2000, toleranceMs: 10_000 });
  expect(shareOf(shapeOf(1, 1, 1), 4)).toEqual({ emissionMs: 4000, toleranceMs: 4000 });
});

test("bad rate-limit configs are refused with their path", () => {
  const problems = (yaml: string): string => {
    try {
      validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\n${yaml}`));
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  };
  const route = (limits: string) => `routes: [{to: a, filters: [{type: rate_limit, limits: ${limits}}]}]\n`;
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 10/s}}\n${route("[ip, nope]")}`)).toContain('routes[0].filters[0].limits[1]: unknown rate limit "nope" (known: ip)');
  expect(problems(route("[ip]"))).toContain('routes[0].filters[0].limits[0]: unknown rate limit "ip" (no rate_limits are defined)');
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 10/s}}\n${route("[ip, ip]")}`)).toContain("routes[0].filters[0].limits: a limit is listed twice");
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 10/fortnight}}\n`)).toContain('rate_limits.ip.rate: "10/fortnight" is not a rate');
  expect(problems(`rate_limits: {ip: {key: client_ip}}\n`)).toContain("rate_limits.ip.rate: give rate (and burst) or tiers");
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 1/s, scope: global}}\n`)).toContain("rate_limits.ip.redis: scope: global needs redis: { url }");
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 1/s, redis: {url: "redis://127.0.0.1:6379"}}}\n`)).toContain("rate_limits.ip.scope: redis is given but scope is local");
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 1/s, scope: global, redis: {url: "http://x"}}}\n`)).toContain("rate_limits.ip.redis.url: must be a redis://");
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 1/s, burst: 0}}\n`)).toContain("rate_limits.ip.burst");
  expect(problems(`rate_limits: {ip: {key: {cookie: session}, rate: 1/s}}\n`)).toContain("rate_limits.ip.key");
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 1/s, keyy: 1}}\n`)).toContain('rate_limits.ip: unknown key "keyy"');
  expect(problems(`rate_limits: {"bad name": {key: client_ip, rate: 1/s}}\n`)).toContain("rate_limits.bad name: rate limit names are letters, digits, _ . or -");
  expect(problems(`rate_limits: {"__proto__": {key: client_ip, rate: 1/s}}\n`)).toContain('rate_limits: "__proto__" is not allowed as a key');
  expect(problems(`rate_limits: {t: {key: client_ip, rate: 1/s, tiers: {from: auth_tier, default: free, levels: {free: {rate: 1/s}}}}}\n`)).toContain("rate_limits.t.tiers: give either rate or tiers");
  expect(problems(`rate_limits: {t: {key: client_ip, tiers: {from: auth_tier, default: gold, levels: {free: {rate: 1/s}}}}}\n`)).toContain('rate_limits.t.tiers.default: unknown tier "gold" (levels: free)');
  expect(problems(`rate_limits: {ip: {key: client_ip, rate: 10/s, burst: 20}}\n${route("[ip]")}`)).toBe("");
});

test("runtime resources: a reload keeps an unchanged limit and its Redis connection; a removed one is disposed", async () => {
  const { buildRuntime } = await import("../../src/runtime/build.ts");
  const { RedisConnection } = await import("../../src/filters/rate-limit/redis-buckets.ts");
  const { RedisUnavailable } = await import("../../src/util/redis-link.ts");
  const parse = (url: string, rate = "5/s") => validateConfig("t.yaml", {
    listeners: [{ port: 8080 }],
    clusters: { a: { endpoints: ["127.0.0.1:1"] } },
    rate_limits: { g: { key: "client_ip", rate, scope: "global", redis: { url } } },
    routes: [{ name: "r1", to: "a", filters: [{ type: "rate_limit", limits: ["g"] }] }, { name: "r2", to: "a", filters: [{ type: "rate_limit", limits: ["g"] }] }],
  });
  const connectionOf = (rt: { resources: ReadonlyMap<string, unknown> }) => [...rt.resources.values()].find((r) => r instanceof RedisConnection) as InstanceType<typeof RedisConnection>;
  const limiterOf = (rt: { resources: ReadonlyMap<string, unknown> }) => [...rt.resources.values()].find((r) => r instanceof Limiter);
  const first = buildRuntime(parse("redis://127.0.0.1:1"), 1);
  expect([...first.resources.keys()].filter((k) => k.startsWith("rate-limit:"))).toEqual(["rate-limit:g"]); // one limiter for both routes
  const same = buildRuntime(parse("redis://127.0.0.1:1"), 2, first);
  first.dispose(same);
  expect(limiterOf(same)).toBe(limiterOf(first));
  expect(connectionOf(same)).toBe(connectionOf(first));
  const other = buildRuntime(parse("redis://127.0.0.1:2", "6/s"), 3, same);
  same.dispose(other);
  expect(limiterOf(other)).not.toBe(limiterOf(same));
  // The connection no runtime uses any more is closed for good: it refuses at once, never reconnects.
  const error = await connectionOf(same).take("k", shapeOf(1, 1, 1), 1000).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RedisUnavailable);
  expect((error as InstanceType<typeof RedisUnavailable>).reason).toBe("down");
  other.dispose();
});
