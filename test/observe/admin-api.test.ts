/** The admin API: bearer token, config (redacted), clusters, the route-test tool, drain. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "s3cret-admin-token-0123456789";
let up: Upstream;
let proxy: TestProxy;
let admin: string;

beforeAll(async () => {
  up = startUpstream(() => new Response("ok"));
  proxy = await startProxy({
    admin: { address: "127.0.0.1", port: 0, token: TOKEN },
    routes: [
      { name: "orders", match: { hosts: ["api.example.com"], path: { prefix: "/v2/orders" } }, rewrite: { path_prefix: "/orders" }, to: "orders", failover: ["backup"] },
      { name: "canary", match: { headers: [{ name: "x-canary", exact: "1" }] }, to: "backup" },
    ],
    clusters: { orders: { endpoints: [up.origin, "127.0.0.1:1"] }, backup: { endpoints: [up.origin] } },
  });
  admin = proxy.running.admin!.url.origin;
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

const auth = { authorization: `Bearer ${TOKEN}` };

test("everything but health needs the bearer token", async () => {
  expect((await fetch(`${admin}/healthz`)).status).toBe(200);
  expect((await fetch(`${admin}/readyz`)).status).toBe(200);
  for (const path of ["/config", "/clusters", "/metrics", "/route?url=http://x/"]) {
    const res = await fetch(admin + path);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    expect((await fetch(admin + path, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    expect((await fetch(admin + path, { headers: auth })).status).toBe(200);
  }
});

test("GET /config shows the config in force with secrets redacted", async () => {
  const body = (await (await fetch(`${admin}/config`, { headers: auth })).json()) as { version: number; config: { admin: { token: string }; routes: { name: string }[] } };
  expect(body.version).toBe(1);
  expect(body.config.admin.token).toBe("[redacted]");
  expect(body.config.routes.map((r) => r.name)).toEqual(["orders", "canary"]);
  expect(JSON.stringify(body)).not.toContain(TOKEN);
});

test("GET /clusters lists endpoints with their state", async () => {
  const body = (await (await fetch(`${admin}/clusters`, { headers: auth })).json()) as { clusters: { name: string; endpoints: { address: string; available: boolean }[] }[] };
  const orders = body.clusters.find((c) => c.name === "orders")!;
  expect(orders.endpoints.map((e) => e.address)).toEqual([up.origin.replace("http://", ""), "127.0.0.1:1"]);
  expect(orders.endpoints.every((e) => e.available)).toBe(true);
});

test("GET /route tells which route and cluster a request would hit, and what the upstream would see", async () => {
  const ask = async (query: string) => (await (await fetch(`${admin}/route?${query}`, { headers: auth })).json()) as Record<string, unknown>;
  expect(await ask(`method=GET&url=${encodeURIComponent("http://api.example.com/v2/orders/7?x=1")}`)).toMatchObject({
    route: "orders", index: 0, cluster: "orders", clusters: ["orders", "backup"], upstream_path: "/orders/7?x=1", upstream_host: "api.example.com",
  });
  expect(await ask(`url=${encodeURIComponent("http://other.example/")}&header=x-canary:1`)).toMatchObject({ route: "canary", cluster: "backup" });
  expect(await ask(`url=${encodeURIComponent("http://other.example/")}`)).toMatchObject({ route: null });
  // The path as the request guard normalizes it, or why it would be refused.
  expect(await ask(`url=${encodeURIComponent("http://api.example.com//v2/%6Frders/7")}`)).toMatchObject({ route: "orders", upstream_path: "/orders/7", refused: null });
  expect(await ask(`url=${encodeURIComponent("http://api.example.com/v2%2Forders/7")}`)).toMatchObject({ route: null, refused: "the path has an escaped slash or backslash (%2F, %5C)" });
  // The host as the proxy routes it: a fully qualified name's trailing dot dropped.
  expect(await ask(`url=${encodeURIComponent("http://API.example.com./v2/orders/7")}`)).toMatchObject({ route: "orders", upstream_host: "api.example.com" });
  expect((await fetch(`${admin}/route?url=relative`, { headers: auth })).status).toBe(400);
});

test("POST /drain drains the process like SIGTERM: it exits 0", async () => {
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    admin: { address: "127.0.0.1", port: 0 },
    routes: [{ to: "u" }],
    clusters: { u: { endpoints: [up.origin] } },
    access_log: { enabled: false },
  });
  const p = await spawnProxy(config.file);
  try {
    const res = await fetch(`${p.adminOrigin}/drain`, { method: "POST" });
    expect(res.status).toBe(202);
    expect(await p.proc.exited).toBe(0);
  } finally {
    p.proc.kill("SIGKILL");
    config.cleanup();
  }
});

test("PUT /config: ?dry_run=1 validates and shows the diff; a valid config is swapped in; an invalid one is refused with every problem", async () => {
  const current = (await (await fetch(`${admin}/config`, { headers: auth })).json()) as { version: number };
  const next = {
    listeners: [{ address: "127.0.0.1", port: proxy.port }],
    admin: { address: "127.0.0.1", port: proxy.running.admin!.port, token: TOKEN },
    routes: [{ name: "everything", to: "backup" }],
    clusters: { backup: { endpoints: [up.origin] } },
  };
  const put = (body: unknown, query = "") => fetch(`${admin}/config${query}`, { method: "PUT", body: JSON.stringify(body), headers: { ...auth, "content-type": "application/json" } });

  const dry = (await (await put(next, "?dry_run=1")).json()) as { dry_run: boolean; changes: { path: string }[] };
  expect(dry.dry_run).toBe(true);
  expect(dry.changes.map((c) => c.path)).toContain("routes[0].name");
  expect(((await (await fetch(`${admin}/config`, { headers: auth })).json()) as { version: number }).version).toBe(current.version);

  const bad = await put({ ...next, routes: [{ to: "nowhere", timeouts: { request: "soon" } }] });
  expect(bad.status).toBe(422);
  const refused = (await bad.json()) as { problems: string[] };
  expect(refused.problems).toContain('routes[0].to: unknown cluster "nowhere" (known: backup)');
  expect(refused.problems.some((p) => p.startsWith("routes[0].timeouts.request"))).toBe(true);
  // Valid, but its runtime cannot be built (the access log's directory does not exist): refused too.
  const unbuildable = await put({ ...next, access_log: { path: "/nonexistent-switchyard-dir/access.log" } });
  expect(unbuildable.status).toBe(422);
  expect(((await unbuildable.json()) as { problems: string[] }).problems[0]).toContain("ENOENT");

  const applied = (await (await put(next)).json()) as { version: number };
  expect(applied.version).toBe(current.version + 1);
  const explained = (await (await fetch(`${admin}/route?url=${encodeURIComponent("http://api.example.com/v2/orders/1")}`, { headers: auth })).json()) as { route: string };
  expect(explained.route).toBe("everything");
});

test("redaction: secrets by name and URL passwords, but settings whose names merely contain key or token stay", async () => {
  const { redact } = await import("../../routes/admin-api.ts");
  const shown = redact({
    admin: { token: "t0ken-0123456789abcdef" },
    auth: {
      idp: { type: "introspection", client_secret: "cs-secret", token_type_hint: "access_token", token: { header: "authorization" } },
      keys: { type: "api_key", keys: [{ name: "acme", sha256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae" }] },
      hmac: { type: "jwt", keys: [{ secret: "hmac-secret" }] },
    },
    rate_limits: { ip: { key: "client_ip", missing_key: "anonymous", redis: { url: "redis://user:redis-pw@10.0.0.5:6379/0" } } },
    telemetry: { tracing: { headers: { "x-honeycomb-team": "hc-secret" } } },
    // Header rules and composition calls that send a credential upstream: header names use hyphens.
    routes: [{ headers: { request: { set: { "x-api-key": "hdr-apikey", "api-key": "hdr-apikey2", "x-auth-token": "hdr-token", "proxy-authorization": "hdr-proxy" } } } }],
  }) as Record<string, any>;
  const text = JSON.stringify(shown);
  for (const secret of ["t0ken-0123456789abcdef", "cs-secret", "2c26b46b", "hmac-secret", "redis-pw", "hc-secret", "hdr-apikey", "hdr-token", "hdr-proxy"]) expect(text).not.toContain(secret);
  expect(shown.rate_limits.ip.redis.url).toBe("redis://user:[redacted]@10.0.0.5:6379/0");
  expect(shown.rate_limits.ip.key).toBe("client_ip");
  expect(shown.rate_limits.ip.missing_key).toBe("anonymous");
  expect(shown.auth.idp.token_type_hint).toBe("access_token");
  expect(shown.auth.idp.token).toEqual({ header: "authorization" });
  expect(shown.auth.keys.keys[0].name).toBe("acme");
});
