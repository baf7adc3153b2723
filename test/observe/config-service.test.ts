/**
 * The config service (switchyard.config.v1, Connect over HTTP/1.1 on the admin listener), driven
 * by the generated client from @connectrpc/connect-web: snapshots and endpoint updates re-route
 * real traffic; invalid pushes get a NACK with every problem (the text `switchyard validate`
 * prints) and change nothing; bad input gets Connect errors.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { create, fromBinary, type JsonObject, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import {
  BalancerType,
  ClusterSchema,
  ConfigService,
  PushResponseSchema,
  RouteSchema,
  SnapshotSchema,
} from "../../src/gen/switchyard/config/v1/config_pb.ts";
import type { ConfigInput } from "../../src/config/schema.ts";
import { CONFIG_SERVICE_PATH } from "../../routes/admin.ts";
import { CLI, ROOT, writeTempConfig } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { recordingUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "control-plane-token-0123456789";
const API_KEY = "pushed-route-api-key-0123456789";
let a: Upstream;
let b: ReturnType<typeof recordingUpstream>;
let c: Upstream;
let j: Upstream;
let proxy: TestProxy;
let admin: string;
const cacheDir = tempDir();

/** The file's named sections a pushed route may refer to (they are not pushed: a route names them). */
const SECTIONS = {
  rate_limits: { "per-client": { key: { header: "x-client" }, rate: "3/min" } },
  auth: { keys: { type: "api_key", keys: [{ name: "control-plane-test", sha256: new Bun.CryptoHasher("sha256").update(API_KEY).digest("hex") }] } },
  caches: { main: { path: cacheDir.file("cache.db") } },
} satisfies Partial<ConfigInput>;

beforeAll(async () => {
  a = startUpstream(() => new Response("a"));
  b = recordingUpstream("b");
  c = startUpstream(() => new Response("c"));
  j = startUpstream((req) => Response.json({ path: new URL(req.url).pathname }, { headers: { "cache-control": "public, max-age=60" } }));
  proxy = await startProxy({
    admin: { address: "127.0.0.1", port: 0, token: TOKEN },
    routes: [{ name: "main", to: "a" }],
    clusters: { a: { endpoints: [a.origin] } },
    ...SECTIONS,
  });
  admin = proxy.running.admin!.url.origin;
});
afterAll(async () => {
  await proxy.stop();
  for (const u of [a, b, c, j]) u.stop(true);
  cacheDir.cleanup();
});

const bearer = (token: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
const clientFor = (useBinaryFormat: boolean, interceptors: Interceptor[] = [bearer(TOKEN)]) =>
  createClient(ConfigService, createConnectTransport({ baseUrl: admin, useBinaryFormat, interceptors }));
const binary = () => clientFor(true);
const json = () => clientFor(false);

const body = async (path: string, init?: RequestInit) => (await fetch(proxy.origin + path, init)).text();
const version = () => proxy.running.state.runtime.current.version;
const rpcUrl = (method: string) => `${proxy.running.admin!.url.origin}/switchyard.config.v1.ConfigService/${method}`;
const auth = { authorization: `Bearer ${TOKEN}` };

interface SnapshotInit {
  versionInfo: string;
  routes: MessageInitShape<typeof RouteSchema>[];
  clusters: Record<string, MessageInitShape<typeof ClusterSchema>>;
}
const snapshotToB = (): SnapshotInit => ({ versionInfo: "to-b", routes: [{ name: "to-b", to: "b" }], clusters: { b: { endpoints: [{ address: b.origin }] } } });

describe("pushes", () => {
  test("PushSnapshot (binary) replaces routes and clusters: a real request through the proxy now reaches the new upstream", async () => {
    expect(await body("/x")).toBe("a");
    const before = version();
    const res = await binary().pushSnapshot(snapshotToB());
    expect(res).toMatchObject({ accepted: true, version: BigInt(before + 1), versionInfo: "to-b", workers: 1, problems: [] });
    expect(await body("/x")).toBe("b");
    // Everything but routes and clusters is the file's: the admin token, the access log file.
    expect(proxy.running.state.runtime.current.config.admin?.token).toBe(TOKEN);
    const res2 = await fetch(`${proxy.origin}/logged`);
    await res2.text();
    await proxy.logOf(res2.headers.get("x-request-id")!);
  });

  test("the JSON codec: match, rewrite, header rules, weights, balancer and timeouts reach the data path", async () => {
    const res = await json().pushSnapshot({
      versionInfo: "json-1",
      routes: [
        {
          name: "api",
          match: { hosts: ["api.example.com"], path: { kind: { case: "prefix", value: "/api" } }, methods: ["GET"], headers: [{ name: "x-team", condition: { case: "present", value: true } }] },
          rewrite: { pathPrefix: "/v1", query: { set: { pushed: "1" } } },
          weightedClusters: [{ cluster: "b", weight: 1 }, { cluster: "c", weight: 0 }],
          timeouts: { request: "5s", idle: "2s" },
          retry: { attempts: 2, retryOn: ["connect-failure"], backoff: { base: "1ms", max: "2ms" } },
          headers: { request: { set: { "x-pushed": "yes" } }, response: { add: { "x-route": "api" } } },
        },
        { name: "rest", to: "c" },
      ],
      clusters: {
        b: { endpoints: [{ address: b.origin, weight: 3 }], balancer: { type: BalancerType.LEAST_REQUEST, choiceCount: 3 }, timeouts: { connect: "1s" }, healthCheck: { path: "/healthz", interval: "1m" }, trusted: false },
        c: { endpoints: [{ address: c.origin }], balancer: { type: BalancerType.MAGLEV, hashOn: { key: { case: "header", value: "x-user" } } }, limits: { maxRequests: 100 } },
      },
    });
    expect(res).toMatchObject({ accepted: true, versionInfo: "json-1", problems: [] });
    const seen = b.seen.length;
    const hit = await fetch(`${proxy.origin}/api/items?x=1`, { headers: { host: "api.example.com", "x-team": "t", authorization: "Bearer user" } });
    expect(await hit.text()).toBe("b");
    expect(hit.headers.get("x-route")).toBe("api");
    const upstream = b.seen[seen]!;
    expect(upstream.url.pathname).toBe("/v1/items");
    expect(upstream.url.searchParams.get("pushed")).toBe("1");
    expect(upstream.headers["x-pushed"]).toBe("yes");
    expect(upstream.headers.authorization).toBeUndefined(); // trusted: false
    expect(await body("/api/items", { headers: { host: "api.example.com" } })).toBe("c"); // no x-team header: next route
    const config = proxy.running.state.runtime.current.config;
    expect(config.routes[0]!.timeouts).toEqual({ request: 5000, idle: 2000 });
    expect(config.clusters.b!.balancer).toEqual({ type: "least_request", choice_count: 3 });
    expect(config.clusters.c!.balancer).toEqual({ type: "maglev", hash_on: { header: "x-user" }, table_size: 65537 });
  });

  test("GetConfig answers the version in force, the version_info that put it there, and its routes and clusters", async () => {
    const res = await binary().getConfig({});
    expect(res).toMatchObject({ version: BigInt(version()), versionInfo: "json-1", routes: ["api", "rest"], clusters: ["b", "c"] });
  });

  test("UpdateEndpoints moves one cluster to new endpoints; routes and the other clusters stay", async () => {
    await binary().pushSnapshot(snapshotToB());
    expect(await body("/x")).toBe("b");
    const res = await json().updateEndpoints({ cluster: "b", endpoints: [{ address: c.origin }], versionInfo: "eds-1" });
    expect(res).toMatchObject({ accepted: true, versionInfo: "eds-1", version: BigInt(version()) });
    expect(await body("/x")).toBe("c");
    expect((await binary().getConfig({})).routes).toEqual(["to-b"]);
    const back = await binary().updateEndpoints({ cluster: "b", endpoints: [{ address: b.origin.replace("http://", ""), weight: 2 }], versionInfo: "eds-2" });
    expect(back.accepted).toBe(true);
    expect(await body("/x")).toBe("b");
    expect(proxy.running.state.runtime.current.config.clusters.b!.endpoints).toEqual([{ url: b.origin.replace("http://", ""), weight: 2 }]);
  });
});

describe("NACK", () => {
  test("an invalid snapshot: every problem with its path, the same lines `switchyard validate` prints; the running config stays", async () => {
    const before = version();
    const res = await json().pushSnapshot({
      versionInfo: "bad-1",
      routes: [{ name: "r", to: "ghost", timeouts: { request: "soon" } }, { name: "r" , to: "b" }],
      clusters: { b: { endpoints: [{ address: "ftp://x:1" }], healthCheck: { path: "healthz" } } },
    });
    expect(res.accepted).toBe(false);
    expect(res.version).toBe(BigInt(before));
    expect(res.versionInfo).toBe("bad-1");
    expect(res.workers).toBe(0);
    const lines = res.problems.map((p) => `${p.path}: ${p.message}`).sort();
    expect(lines).toContain('routes[0].to: unknown cluster "ghost" (known: b)');
    expect(lines).toContain('routes[0].timeouts.request: "soon" is not a duration (use e.g. 250ms, 5s, 2m, 1h, or 0)');
    expect(lines).toContain("routes[1].name: duplicate route name (also routes[0])");
    expect(lines.some((l) => l.startsWith("clusters.b.endpoints[0]: "))).toBe(true);
    expect(lines.some((l) => l.startsWith("clusters.b.health_check.path: "))).toBe(true);
    // The same config as a file, through the CLI.
    const file = writeTempConfig(
      [
        "listeners: [{ port: 0 }]",
        "routes:",
        "  - { name: r, to: ghost, timeouts: { request: soon } }",
        "  - { name: r, to: b }",
        "clusters:",
        '  b: { endpoints: [{ url: "ftp://x:1" }], health_check: { path: healthz } }',
      ].join("\n"),
      "bad.yaml",
    );
    const run = Bun.spawnSync([process.execPath, CLI, "validate", file.file], { cwd: ROOT });
    file.cleanup();
    expect(run.exitCode).toBe(1);
    const printed = run.stderr.toString().split("\n").slice(1).map((l) => l.trim()).filter(Boolean).sort();
    expect(lines).toEqual(printed);
    // Untouched: the same version, and traffic goes where it went.
    expect(version()).toBe(before);
    expect(await body("/x")).toBe("b");
    expect((await binary().getConfig({})).versionInfo).toBe("eds-2");
  });

  test("an unknown balancer type and a hash balancer without hash_on are refused", async () => {
    const res = await binary().pushSnapshot({
      ...snapshotToB(),
      clusters: { b: { endpoints: [{ address: b.origin }], balancer: { type: 42 as BalancerType } }, c: { endpoints: [{ address: c.origin }], balancer: { type: BalancerType.RING_HASH } } },
    });
    expect(res.accepted).toBe(false);
    expect(res.problems.map((p) => p.path).sort()).toEqual(["clusters.b.balancer.type", "clusters.c.balancer.hash_on"]);
  });

  test("UpdateEndpoints: an unknown cluster, no endpoints, a bad address", async () => {
    const before = version();
    const unknown = await binary().updateEndpoints({ cluster: "nope", endpoints: [{ address: c.origin }], versionInfo: "x" });
    expect(unknown.accepted).toBe(false);
    expect(unknown.problems).toMatchObject([{ path: "clusters.nope", message: 'unknown cluster "nope" (known: b)' }]);
    const none = await binary().updateEndpoints({ cluster: "b", endpoints: [] });
    expect(none.problems).toMatchObject([{ path: "clusters.b.endpoints", message: "needs at least one endpoint" }]);
    const bad = await json().updateEndpoints({ cluster: "b", endpoints: [{ address: c.origin }, { address: "http://x:1/path" }, { address: c.origin, weight: 5000 }] });
    expect(bad.problems.map((p) => p.path)).toEqual(["clusters.b.endpoints[1]", "clusters.b.endpoints[2].weight"]);
    expect(version()).toBe(before);
    expect(await body("/x")).toBe("b");
  });

  test("version_info labels a metric: too long, or with control characters, is refused", async () => {
    const long = await binary().pushSnapshot({ ...snapshotToB(), versionInfo: "v".repeat(129) });
    expect(long.problems).toMatchObject([{ path: "version_info", message: "at most 128 characters (it labels a metric)" }]);
    const control = await binary().pushSnapshot({ ...snapshotToB(), versionInfo: 'v1"\n} 9' });
    expect(control.problems).toMatchObject([{ path: "version_info", message: "no control characters" }]);
  });

  test("fields this proxy does not know: the binary codec's are a NACK with their path, the JSON codec's an invalid_argument", async () => {
    // A route carrying field 99 (a newer control plane's setting).
    const withUnknown = fromBinary(RouteSchema, new Uint8Array([...toBinary(RouteSchema, create(RouteSchema, { to: "b" })), 0x98, 0x06, 0x01]));
    const res = await binary().pushSnapshot({ ...snapshotToB(), routes: [withUnknown] });
    expect(res.accepted).toBe(false);
    expect(res.problems).toMatchObject([{ path: "routes[0]", message: "unknown field number 99 (not in switchyard.config.v1.Route as this proxy knows it)" }]);
    const raw = await fetch(rpcUrl("PushSnapshot"), { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ routes: [{ to: "b", rate_limit: "10/s" }] }) });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ code: "invalid_argument" });
  });
});

describe("protocol edges", () => {
  test("no bearer token, or a wrong one → unauthenticated (a Connect error, 401)", async () => {
    for (const client of [clientFor(true, []), clientFor(false, [bearer("wrong-token-wrong-token")])]) {
      const err = await client.pushSnapshot(snapshotToB()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.Unauthenticated);
      expect(((await client.getConfig({}).catch((e: unknown) => e)) as ConnectError).code).toBe(Code.Unauthenticated);
    }
    const res = await fetch(rpcUrl("GetConfig"), { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: "unauthenticated", message: "the admin API needs Authorization: Bearer <admin.token>" });
  });

  test("garbage, wrong content types, unknown methods, oversized bodies: Connect errors, and the process serves on", async () => {
    const before = version();
    const post = (method: string, contentType: string, payload: Uint8Array | string | ReadableStream<Uint8Array>, extra: Record<string, string> = {}) =>
      fetch(rpcUrl(method), { method: "POST", headers: { ...auth, "content-type": contentType, ...extra }, body: payload });
    const garbage = await post("PushSnapshot", "application/proto", new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]));
    expect(garbage.status).toBe(400);
    expect(await garbage.json()).toMatchObject({ code: "invalid_argument" });
    const badJson = await post("PushSnapshot", "application/json", "{routes: [");
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ code: "invalid_argument" });
    const wrongType = await post("PushSnapshot", "text/plain", "routes: []");
    expect(wrongType.status).toBe(415);
    const wrongField = await post("PushSnapshot", "application/json", JSON.stringify({ routes: "all of them" }));
    expect(wrongField.status).toBe(400);
    const unknownMethod = await post("DeleteEverything", "application/json", "{}");
    expect(unknownMethod.status).toBe(501);
    expect(await unknownMethod.json()).toMatchObject({ code: "unimplemented" });
    expect((await fetch(rpcUrl("GetConfig"), { headers: auth })).status).toBe(405);
    // Over the 4 MiB limit: declared, and streamed without a length.
    const big = await post("PushSnapshot", "application/proto", new Uint8Array(5 * 1024 * 1024));
    expect(big.status).toBe(429);
    expect(await big.json()).toMatchObject({ code: "resource_exhausted" });
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 6 * 1024 * 1024) return controller.close();
        sent += 64 * 1024;
        controller.enqueue(new Uint8Array(64 * 1024).fill(0x20)); // JSON whitespace, endlessly
      },
    });
    const streamed = await post("PushSnapshot", "application/json", stream);
    expect(streamed.status).toBe(429);
    expect(await streamed.json()).toMatchObject({ code: "resource_exhausted" });
    // Still serving, nothing changed.
    expect(version()).toBe(before);
    expect((await binary().getConfig({})).version).toBe(BigInt(before));
    expect(await body("/x")).toBe("b");
  });

  test("a binary request and answer on the wire (what a non-JS control plane sends)", async () => {
    const res = await fetch(rpcUrl("PushSnapshot"), {
      method: "POST",
      headers: { ...auth, "content-type": "application/proto", "connect-protocol-version": "1" },
      body: toBinary(SnapshotSchema, create(SnapshotSchema, { ...snapshotToB(), versionInfo: "wire" })),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/proto");
    const answer = fromBinary(PushResponseSchema, new Uint8Array(await res.arrayBuffer()));
    expect(answer).toMatchObject({ accepted: true, versionInfo: "wire", version: BigInt(version()) });
  });

  test("concurrent pushes each get their own version; the last applied is the one in force", async () => {
    const before = version();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? binary() : json()).pushSnapshot({ ...snapshotToB(), versionInfo: `burst-${i}` })));
    const versions = answers.map((r) => Number(r.version)).sort((x, y) => x - y);
    expect(versions).toEqual(Array.from({ length: 20 }, (_, i) => before + 1 + i));
    const last = answers.find((r) => Number(r.version) === before + 20)!;
    expect((await binary().getConfig({})).versionInfo).toBe(last.versionInfo);
  });
});

describe("metrics and reload", () => {
  const scrape = async () => {
    const text = await (await fetch(`${admin}/metrics`, { headers: auth })).text();
    return { text, families: new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f])) };
  };

  test("/metrics: the pushed version_info as one info series (replaced, not accumulated), push results, the config version", async () => {
    await binary().pushSnapshot({ ...snapshotToB(), versionInfo: "metrics-1" });
    const first = await scrape();
    await json().pushSnapshot({ ...snapshotToB(), versionInfo: "metrics-2" });
    await json().pushSnapshot({ ...snapshotToB(), routes: [{ to: "ghost" }], versionInfo: "metrics-bad" });
    const { text, families } = await scrape();
    expect(first.families.get("switchyard_config_push_info")!.metrics).toEqual([{ labels: { version_info: "metrics-1" }, value: "1" }]);
    expect(families.get("switchyard_config_push_info")!.metrics).toEqual([{ labels: { version_info: "metrics-2" }, value: "1" }]);
    expect(families.get("switchyard_config_version")!.metrics[0]!.value).toBe(String(version()));
    const pushes = families.get("switchyard_config_pushes_total")!.metrics;
    const count = (rpc: string, result: string) => Number(pushes.find((m) => m.labels?.rpc === rpc && m.labels?.result === result)?.value ?? 0);
    const firstPushes = first.families.get("switchyard_config_pushes_total")!.metrics;
    const countBefore = (rpc: string, result: string) => Number(firstPushes.find((m) => m.labels?.rpc === rpc && m.labels?.result === result)?.value ?? 0);
    expect(count("PushSnapshot", "accepted") - countBefore("PushSnapshot", "accepted")).toBe(1);
    expect(count("PushSnapshot", "rejected") - countBefore("PushSnapshot", "rejected")).toBe(1);
    expect(count("UpdateEndpoints", "accepted")).toBeGreaterThanOrEqual(2);
    const check = Bun.spawn(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text), stdout: "pipe", stderr: "pipe" });
    expect(await check.exited).toBe(0);
  });

  test("a reload from the file puts the file's routes back and clears version_info", async () => {
    expect(await proxy.running.reload()).toBe(true);
    expect(await body("/x")).toBe("a");
    expect(await binary().getConfig({})).toMatchObject({ versionInfo: "", routes: ["main"], clusters: ["a"] });
    expect((await scrape()).families.has("switchyard_config_push_info")).toBe(true); // the family stays, without a series
    expect((await scrape()).families.get("switchyard_config_push_info")!.metrics).toEqual([]);
  });
});

test("served on the admin listener only", async () => {
  const res = await fetch(`${proxy.origin}/switchyard.config.v1.ConfigService/GetConfig`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{}" });
  expect(await res.text()).toBe("a"); // the public listener proxies it like any path
});

/** A route with every kind of filter, a cache of the file's and a retry policy: what the control-plane test pushed and lost. */
const guardedRoute = (prefix: string): MessageInitShape<typeof RouteSchema> => ({
  name: "guarded",
  match: { path: { kind: { case: "prefix", value: prefix } } },
  to: "j",
  filters: [
    { type: "cors", allow_origins: ["https://app.example.com"] },
    { type: "auth", providers: ["keys"] },
    { type: "rate_limit", limits: ["per-client"] },
    { type: "transform", response: [{ op: "set", path: "pushed", value: true }] },
  ],
  cache: { name: "main" },
  retry: { attempts: 3, retryOn: ["connect-failure"] },
});

describe("filters and the rest of a route", () => {
  for (const [codec, client] of [["binary", binary], ["JSON", json]] as const) {
    test(`${codec}: a pushed route's filters are in force — 401 without credentials, 429 after the limit, cors, transform and the file's cache`, async () => {
      const prefix = `/guarded-${codec.toLowerCase()}`;
      const before = version();
      const res = await client().pushSnapshot({
        versionInfo: `filters-${codec}`,
        routes: [guardedRoute(prefix), { name: "rest", to: "a" }],
        clusters: { j: { endpoints: [{ address: j.origin }] }, a: { endpoints: [{ address: a.origin }] } },
      });
      expect(res).toMatchObject({ accepted: true, version: BigInt(before + 1), problems: [] });
      expect(await binary().getConfig({})).toMatchObject({ version: BigInt(before + 1), versionInfo: `filters-${codec}`, routes: ["guarded", "rest"], clusters: ["j", "a"] });

      const client1 = `${codec}-client`;
      const get = (headers: Record<string, string>) => fetch(`${proxy.origin}${prefix}/item`, { headers: { "x-client": client1, ...headers } });
      const anonymous = await get({});
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toMatchObject({ error: "unauthenticated" });
      const first = await get({ "x-api-key": API_KEY, origin: "https://app.example.com" });
      expect(first.status).toBe(200);
      expect(await first.json()).toEqual({ path: `${prefix}/item`, pushed: true }); // transform
      expect(first.headers.get("access-control-allow-origin")).toBe("https://app.example.com"); // cors
      expect(first.headers.get("x-cache")).toBe("MISS");
      // The file's cache "main" (public: stored for authenticated callers too, RFC 9111 §3.5). It
      // stores while the body streams: poll for the HIT, each poll as its own client of the limit.
      let i = 0;
      await waitFor("a HIT", async () => {
        const r = await get({ "x-api-key": API_KEY, "x-client": `${client1}-cache-${i++}` });
        await r.text();
        return r.headers.get("x-cache") === "HIT";
      }, 1000);
      for (let i = 0; i < 2; i++) {
        const r = await get({ "x-api-key": API_KEY });
        expect(r.status).toBe(200);
        await r.text();
      }
      const limited = await get({ "x-api-key": API_KEY });
      expect(limited.status).toBe(429); // 3/min per x-client
      expect(limited.headers.get("retry-after")).not.toBeNull();
      await limited.text();
      expect((await get({ "x-api-key": API_KEY, "x-client": `${client1}-other` })).status).toBe(200); // a bucket per x-client
      const config = proxy.running.state.runtime.current.config;
      expect(config.routes[0]!.filters!.map((f) => f.type)).toEqual(["cors", "auth", "rate_limit", "transform"]);
      expect(config.routes[0]!.retry?.attempts).toBe(3);
      expect(config.routes[0]!.cache?.name).toBe("main");
    });
  }

  test("a bad filter: NACK with the lines `switchyard validate` prints for the same route in a file", async () => {
    const before = version();
    const filters: JsonObject[] = [
      { type: "rate_limit", limits: ["nope"] },
      { type: "auth", providers: ["ghost"] },
      { type: "cors" },
      { type: "gzip" },
    ];
    const bad = { name: "bad", to: "a", filters, cache: { name: "missing" } };
    const res = await json().pushSnapshot({ versionInfo: "bad-filter", routes: [bad], clusters: { a: { endpoints: [{ address: a.origin }] } } });
    expect(res.accepted).toBe(false);
    expect(res.version).toBe(BigInt(before));
    const lines = res.problems.map((p) => `${p.path}: ${p.message}`).sort();
    expect(lines).toContain('routes[0].filters[0].limits[0]: unknown rate limit "nope" (known: per-client)');
    expect(lines).toContain('routes[0].filters[1].providers[0]: unknown auth provider "ghost" (known: keys)');
    expect(lines).toContain('routes[0].cache.name: unknown cache "missing" (known: main)');
    const file = writeTempConfig(JSON.stringify({ listeners: [{ port: 0 }], ...SECTIONS, routes: [bad], clusters: { a: { endpoints: [a.origin] } } }), "bad-filter.json");
    const run = Bun.spawnSync([process.execPath, CLI, "validate", file.file], { cwd: ROOT });
    file.cleanup();
    expect(run.exitCode).toBe(1);
    expect(lines).toEqual(run.stderr.toString().split("\n").slice(1).map((l) => l.trim()).filter(Boolean).sort());
    expect(version()).toBe(before);
  });
});

describe("a part of the running config a push cannot express", () => {
  // health_check.expected_statuses: [] (no status passes) is a list proto3 cannot tell from an
  // unset one (any 2xx): no v1 message can say it, so a push of that cluster would silently turn
  // it into "any 2xx".
  let own: TestProxy;
  let ownAdmin: string;
  beforeAll(async () => {
    own = await startProxy({
      admin: { address: "127.0.0.1", port: 0, token: TOKEN },
      routes: [{ name: "main", to: "a" }],
      clusters: {
        a: { endpoints: [a.origin] },
        probe: { endpoints: [c.origin], health_check: { path: "/", interval: "1m", expected_statuses: [] } },
      },
    });
    ownAdmin = own.running.admin!.url.origin;
  });
  afterAll(() => own.stop());
  const ownClient = (useBinaryFormat: boolean) => createClient(ConfigService, createConnectTransport({ baseUrl: ownAdmin, useBinaryFormat, interceptors: [bearer(TOKEN)] }));
  const routes = [{ name: "main", to: "a" }];

  test("a push that would drop it is NACKed with its path (both codecs); the running config stays", async () => {
    const before = own.running.state.runtime.current.version;
    for (const useBinaryFormat of [true, false]) {
      const res = await ownClient(useBinaryFormat).pushSnapshot({
        versionInfo: "drops-it",
        routes,
        clusters: { a: { endpoints: [{ address: a.origin }] }, probe: { endpoints: [{ address: c.origin }], healthCheck: { path: "/", interval: "1m" } } },
      });
      expect(res.accepted).toBe(false);
      expect(res.problems).toEqual([
        expect.objectContaining({
          path: "clusters.probe.health_check.expected_statuses",
          message: "the running config has [] here, which a v1 push cannot express; this push would change it to unset. Change it with the config file or PUT /config first",
        }),
      ]);
    }
    expect(own.running.state.runtime.current.version).toBe(before);
    expect(own.running.state.runtime.current.config.clusters.probe!.health_check!.expected_statuses).toEqual([]);
  });

  test("a push that sets it to something else, or leaves the cluster out, is the control plane's choice: ACK", async () => {
    const set = await ownClient(true).pushSnapshot({
      versionInfo: "sets-it",
      routes,
      clusters: { a: { endpoints: [{ address: a.origin }] }, probe: { endpoints: [{ address: c.origin }], healthCheck: { path: "/", interval: "1m", expectedStatuses: [204] } } },
    });
    expect(set.accepted).toBe(true);
    expect(await own.running.reload()).toBe(true); // the file's [] again
    const without = await ownClient(false).pushSnapshot({ versionInfo: "removes-it", routes, clusters: { a: { endpoints: [{ address: a.origin }] } } });
    expect(without.accepted).toBe(true);
  });
});

test("the admin listener routes the generated service's own path to it (it is loaded only on first use)", () => {
  expect(CONFIG_SERVICE_PATH).toBe(`/${ConfigService.typeName}/`);
});
