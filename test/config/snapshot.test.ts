/** Pushed protobuf → config: a snapshot with every field of switchyard.config.v1 means what the same YAML means. */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { create, fromBinary, fromJson, type JsonObject, toBinary } from "@bufbuild/protobuf";
import { ListValueSchema } from "@bufbuild/protobuf/wkt";
import { configDocument, validateConfig, validateLiteral } from "../../src/config/load.ts";
import { droppedParts, inexpressible, keysWithoutField } from "../../src/config/push-coverage.ts";
import { snapshotDocument, unknownFields, withEndpoints, withSnapshot } from "../../src/config/snapshot.ts";
import { BalancerType, ClusterSchema, EndpointSchema, SnapshotSchema } from "../../src/gen/switchyard/config/v1/config_pb.ts";

const GREETER_DESCRIPTORS = join(import.meta.dir, "../fixtures/greeter.binpb");

/** The file's named sections a pushed route refers to: they stay as the file says. */
const SECTIONS = `
modules: { dir: ./modules }
rate_limits: { per-client: { key: client_ip, rate: 10/s } }
auth: { keys: { type: api_key, keys: [{ name: ops, sha256: "${"ab".repeat(32)}" }] } }
caches: { main: { path: /tmp/switchyard-snapshot-test.db } }
`;

const FILE = `
listeners: [{ port: 8080 }]
admin: { port: 9901, token: "\${ADMIN_TOKEN}" }
access_log: { enabled: false }
${SECTIONS}
routes: [{ to: old }]
clusters: { old: { endpoints: ["127.0.0.1:1"] } }
`;

const EQUIVALENT = `
listeners: [{ port: 8080 }]
admin: { port: 9901, token: "from-the-environment-123" }
access_log: { enabled: false }
${SECTIONS}
routes:
  - name: orders
    match:
      hosts: [api.example.com, "*.example.org"]
      path: { prefix: /v2/orders }
      methods: [GET, POST]
      headers: [{ name: x-canary, exact: "yes" }, { name: x-version, regex: "^v[2-9]$" }, { name: x-debug, present: false }]
      query: [{ name: beta, exact: "1" }]
    rewrite: { path_prefix: /orders, host: orders.internal, query: { set: { v: "2" }, remove: [debug] } }
    weighted_clusters: [{ cluster: orders, weight: 95 }, { cluster: sessions, weight: 5 }]
    override: { header: x-canary, value: "1", cluster: sessions }
    failover: [orders]
    timeouts: { request: 30s, idle: "0" }
    retry:
      attempts: 3
      retry_on: [connect-failure, 5xx]
      retriable_status_codes: [409]
      per_try_timeout: 2s
      backoff: { base: 10ms, max: 1s }
      retry_after_max: 2s
      hedge_after: 50ms
      non_idempotent: true
      buffer_body: 1MiB
    headers:
      request: { add: { x-gw: sy }, set: { x-env: prod }, remove: [x-internal] }
      response: { remove: [server] }
    websocket: true
    mirror: { cluster: sessions, percent: 10, max_body: 1KiB, timeout: 1s }
    fallback: { status: 503, body: "{}", headers: { content-type: application/json } }
    filters:
      - { type: cors, allow_origins: [https://app.example.com], max_age: 5m }
      - { type: auth, providers: [keys], optional: true }
      - { type: authorize, rules: [{ allow: true, when: { api_key_names: [ops] } }] }
      - { type: rate_limit, limits: [per-client], response_headers: false }
      - { type: waf, mode: detect }
      - { type: transform, response: [{ op: set, path: meta.v, value: { n: 2, list: [1, "x", null, true] } }] }
    cache: { name: main, key: { ignore_query: [utm_source] } }
    idempotency: { ttl: 1h }
    compression: { min_size: 2KiB }
    max_request_body: 1MiB
    websocket_headers: []
    fly_replay: { region: ams, methods: [POST, DELETE] }
  - name: composed
    compose: { calls: { u: { cluster: orders, path: /u } }, template: { user: "\${calls.u}" } }
  - { name: mod, module: hello }
  - name: rpc
    grpc_transcode: { descriptors: "${GREETER_DESCRIPTORS}", service: switchyard.test.v1.Greeter }
    to: orders
  - { path_regex_route: true }
  - name: canaried
    rollout: { stable: orders, canary: sessions, steps: [10%, 100%], step_duration: 1m, min_requests: 5, analysis: { error_rate: { max: 2% }, slo: { max_burn_rate: 2 } }, sticky: { header: x-user } }
    slo: { availability: 99.5%, latency: { threshold: 300ms, target: 99% }, window: 7d }
clusters:
  orders:
    endpoints: [{ url: "http://10.0.0.1:8080", weight: 2 }, { url: "10.0.0.2:8080" }]
    balancer: { type: ring_hash, hash_on: { cookie: session }, points_per_weight: 100 }
    timeouts: { connect: 1s }
    health_check: { path: /healthz, interval: 5s, jitter: "0", timeout: 1s, expected_statuses: [200, 204], healthy_threshold: 1, unhealthy_threshold: 2, host: health.internal }
    outlier: { consecutive_5xx: 3, consecutive_gateway_failure: 0, success_rate: { minimum_requests: 10, threshold: 90 }, interval: 5s, base_ejection_time: 10s, max_ejection_time: 60s, max_ejection_percent: 50 }
    panic_threshold: 0
    limits: { max_connections: 10, max_pending: 0, max_requests: 20, max_retries: 1 }
    breaker: { failure_percent: 20, window: 5s, minimum_requests: 5, open_for: 10s, half_open_probes: 1 }
    retry_budget: { percent: 50, min_concurrency: 1 }
    trusted: false
  sessions:
    endpoints: [{ url: "https://10.0.1.1:8443" }]
    balancer: { type: maglev, hash_on: { client_ip: true }, table_size: 251 }
    tls: { server_name: sessions.internal, verify: false }
  found:
    discovery: { type: dns, host: api.internal, port: 8080, family: 4 }
`.replace("  - { path_regex_route: true }", `  - name: regex
    match: { path: { regex: "^/shop/" } }
    rewrite: { path_regex: { pattern: "^/shop/([a-z]+)$", substitution: "" } }
    coalesce: { wait: 1s }
    to: sessions`);

const SNAPSHOT = create(SnapshotSchema, {
  versionInfo: "v7",
  routes: [
    {
      name: "orders",
      match: {
        hosts: ["api.example.com", "*.example.org"],
        path: { kind: { case: "prefix", value: "/v2/orders" } },
        methods: ["GET", "POST"],
        headers: [
          { name: "x-canary", condition: { case: "exact", value: "yes" } },
          { name: "x-version", condition: { case: "regex", value: "^v[2-9]$" } },
          { name: "x-debug", condition: { case: "present", value: false } },
        ],
        query: [{ name: "beta", condition: { case: "exact", value: "1" } }],
      },
      rewrite: { pathPrefix: "/orders", host: "orders.internal", query: { set: { v: "2" }, remove: ["debug"] } },
      weightedClusters: [{ cluster: "orders", weight: 95 }, { cluster: "sessions", weight: 5 }],
      override: { header: "x-canary", value: "1", cluster: "sessions" },
      failover: ["orders"],
      timeouts: { request: "30s", idle: "0" },
      retry: {
        attempts: 3, retryOn: ["connect-failure", "5xx"], retriableStatusCodes: [409], perTryTimeout: "2s", backoff: { base: "10ms", max: "1s" },
        retryAfterMax: "2s", hedgeAfter: "50ms", nonIdempotent: true, bufferBody: "1MiB",
      },
      headers: { request: { add: { "x-gw": "sy" }, set: { "x-env": "prod" }, remove: ["x-internal"] }, response: { remove: ["server"] } },
      websocket: true,
      mirror: { cluster: "sessions", percent: 10, maxBody: "1KiB", timeout: "1s" },
      fallback: { status: 503, body: "{}", headers: { "content-type": "application/json" } },
      filters: [
        { type: "cors", allow_origins: ["https://app.example.com"], max_age: "5m" },
        { type: "auth", providers: ["keys"], optional: true },
        { type: "authorize", rules: [{ allow: true, when: { api_key_names: ["ops"] } }] },
        { type: "rate_limit", limits: ["per-client"], response_headers: false },
        { type: "waf", mode: "detect" },
        { type: "transform", response: [{ op: "set", path: "meta.v", value: { n: 2, list: [1, "x", null, true] } }] },
      ],
      cache: { name: "main", key: { ignore_query: ["utm_source"] } },
      idempotency: { ttl: "1h" },
      compression: { min_size: "2KiB" },
      maxRequestBody: "1MiB",
      websocketHeaders: fromJson(ListValueSchema, []),
      flyReplay: { region: "ams", methods: ["POST", "DELETE"] },
    },
    { name: "composed", compose: { calls: { u: { cluster: "orders", path: "/u" } }, template: { user: "${calls.u}" } } },
    { name: "mod", module: "hello" },
    { name: "rpc", grpcTranscode: { descriptors: GREETER_DESCRIPTORS, service: "switchyard.test.v1.Greeter" }, to: "orders" },
    {
      name: "regex",
      match: { path: { kind: { case: "regex", value: "^/shop/" } } },
      rewrite: { pathRegex: { pattern: "^/shop/([a-z]+)$", substitution: "" } },
      coalesce: { wait: "1s" },
      to: "sessions",
    },
    {
      name: "canaried",
      rollout: { stable: "orders", canary: "sessions", steps: ["10%", "100%"], step_duration: "1m", min_requests: 5, analysis: { error_rate: { max: "2%" }, slo: { max_burn_rate: 2 } }, sticky: { header: "x-user" } },
      slo: { availability: "99.5%", latency: { threshold: "300ms", target: "99%" }, window: "7d" },
    },
  ],
  clusters: {
    orders: {
      endpoints: [{ address: "http://10.0.0.1:8080", weight: 2 }, { address: "10.0.0.2:8080" }],
      balancer: { type: BalancerType.RING_HASH, hashOn: { key: { case: "cookie", value: "session" } }, pointsPerWeight: 100 },
      timeouts: { connect: "1s" },
      healthCheck: { path: "/healthz", interval: "5s", jitter: "0", timeout: "1s", expectedStatuses: [200, 204], healthyThreshold: 1, unhealthyThreshold: 2, host: "health.internal" },
      outlier: { consecutive5xx: 3, consecutiveGatewayFailure: 0, successRate: { minimumRequests: 10, threshold: 90 }, interval: "5s", baseEjectionTime: "10s", maxEjectionTime: "60s", maxEjectionPercent: 50 },
      panicThreshold: 0,
      limits: { maxConnections: 10, maxPending: 0, maxRequests: 20, maxRetries: 1 },
      breaker: { failurePercent: 20, window: "5s", minimumRequests: 5, openFor: "10s", halfOpenProbes: 1 },
      retryBudget: { percent: 50, minConcurrency: 1 },
      trusted: false,
    },
    sessions: {
      endpoints: [{ address: "https://10.0.1.1:8443" }],
      balancer: { type: BalancerType.MAGLEV, hashOn: { key: { case: "clientIp", value: true } }, tableSize: 251 },
      tls: { server_name: "sessions.internal", verify: false },
    },
    found: { discovery: { type: "dns", host: "api.internal", port: 8080, family: 4 } },
  },
});

const env = { ADMIN_TOKEN: "from-the-environment-123" };

describe("snapshot → config", () => {
  test("every field of a snapshot means what the same YAML means; the rest of the file is kept", () => {
    const base = validateConfig("file.yaml", Bun.YAML.parse(FILE), env);
    const pushed = validateLiteral("(push)", withSnapshot(configDocument(base), snapshotDocument(SNAPSHOT)));
    expect(pushed).toEqual(validateConfig("same.yaml", Bun.YAML.parse(EQUIVALENT), {}));
  });

  test("through the binary codec too (explicit zeros and false survive)", () => {
    const decoded = fromBinary(SnapshotSchema, toBinary(SnapshotSchema, SNAPSHOT));
    const base = validateConfig("file.yaml", Bun.YAML.parse(FILE), env);
    const pushed = validateLiteral("(push)", withSnapshot(configDocument(base), snapshotDocument(decoded)));
    expect(pushed.clusters.orders!.panic_threshold).toBe(0);
    expect(pushed.clusters.orders!.limits.max_pending).toBe(0);
    expect(pushed.clusters.orders!.trusted).toBe(false);
    expect(pushed.routes[0]!.match.headers![2]).toEqual({ name: "x-debug", present: false });
    expect(pushed.routes[4]!.rewrite!.path_regex!.substitution).toBe("");
    expect(pushed.routes[0]!.websocket_headers).toEqual([]); // set but empty: not the default list
    expect(pushed).toEqual(validateConfig("same.yaml", Bun.YAML.parse(EQUIVALENT), {}));
  });

  test("filters, cache and the other config-shaped parts are the file's objects in JSON too", () => {
    const json = {
      routes: [{ to: "old", filters: [{ type: "rate_limit", limits: ["per-client"] }], cache: { name: "main" }, websocket_headers: ["authorization"], max_request_body: "1KiB" }],
      clusters: { old: { discovery: { type: "file", path: "/etc/endpoints.yaml" }, tls: { verify: false } } },
    };
    expect(snapshotDocument(fromJson(SnapshotSchema, json))).toEqual(json);
  });

  test("unset fields take the config's defaults; an unspecified balancer is round robin", () => {
    const base = validateConfig("file.yaml", Bun.YAML.parse(FILE), env);
    const pushed = validateLiteral("(push)", withSnapshot(configDocument(base), snapshotDocument(create(SnapshotSchema, {
      routes: [{ to: "c" }],
      clusters: { c: { endpoints: [{ address: "127.0.0.1:2" }], balancer: {} } },
    }))));
    expect(pushed).toEqual(validateConfig("same.yaml", { ...Bun.YAML.parse(FILE) as object, routes: [{ to: "c" }], clusters: { c: { endpoints: [{ url: "127.0.0.1:2" }] } } }, env));
  });

  test("pushed strings are literal: ${VAR} is not substituted into them (the file's part was, at load)", () => {
    const base = validateConfig("file.yaml", Bun.YAML.parse(FILE), env);
    const pushed = validateLiteral("(push)", withSnapshot(configDocument(base), snapshotDocument(create(SnapshotSchema, {
      routes: [{ to: "c", headers: { request: { set: { "x-leak": "${ADMIN_TOKEN}" } } } }],
      clusters: { c: { endpoints: [{ address: "127.0.0.1:2" }] } },
    }))));
    expect(pushed.admin?.token).toBe("from-the-environment-123");
    expect(pushed.routes[0]!.headers!.request!.set).toEqual({ "x-leak": "${ADMIN_TOKEN}" });
  });

  test("withEndpoints replaces one cluster's endpoints and keeps its other settings", () => {
    const base = validateConfig("file.yaml", Bun.YAML.parse(EQUIVALENT), {});
    const result = withEndpoints(configDocument(base), "orders", [create(EndpointSchema, { address: "10.9.9.9:80", weight: 4 })]);
    expect("document" in result).toBe(true);
    const pushed = validateLiteral("(push)", (result as { document: Record<string, unknown> }).document);
    expect(pushed.clusters.orders!.endpoints).toEqual([{ url: "10.9.9.9:80", weight: 4 }]);
    expect(pushed.clusters.orders!.breaker).toEqual(base.clusters.orders!.breaker);
    expect(pushed.clusters.sessions).toEqual(base.clusters.sessions);
    expect(withEndpoints(configDocument(base), "__proto__", [])).toEqual({ problem: { path: "clusters.__proto__", message: 'unknown cluster "__proto__" (known: orders, sessions, found)' } });
  });

  test("unknown fields are found wherever they are nested, with their config path", () => {
    const cluster = fromBinary(ClusterSchema, new Uint8Array([...toBinary(ClusterSchema, create(ClusterSchema, { limits: {} })), 0xf8, 0x3e, 0x07]));
    const snapshot = create(SnapshotSchema, { clusters: { a: cluster } });
    expect(unknownFields(SnapshotSchema, snapshot)).toEqual([{ path: "clusters.a", message: "unknown field number 1007 (not in switchyard.config.v1.Cluster as this proxy knows it)" }]);
    expect(unknownFields(SnapshotSchema, fromBinary(SnapshotSchema, toBinary(SnapshotSchema, SNAPSHOT)))).toEqual([]);
  });
});

describe("what a push cannot express", () => {
  test("every key of the file's route and cluster schema has a v1 field (a key added to the file without one fails here)", () => {
    expect(keysWithoutField()).toEqual([]);
  });

  test("nothing of a config that uses every route and cluster setting is out of a push's reach", () => {
    const gaps = inexpressible(validateConfig("same.yaml", Bun.YAML.parse(EQUIVALENT), {}));
    expect([...gaps.routes.values(), ...gaps.clusters.values()].flat()).toEqual([]);
  });

  const RUNNING = `
listeners: [{ port: 8080 }]
routes: [{ name: api, to: api, headers: { request: { remove: [] } } }, { to: api }]
clusters:
  api:
    endpoints: ["127.0.0.1:1"]
    health_check: { path: /healthz, expected_statuses: [], healthy_threshold: 4294967296 }
  other: { endpoints: ["127.0.0.1:2"] }
`;

  test("what is left: a list proto3 cannot tell from an unset one, a number beyond its field's range", () => {
    const gaps = inexpressible(validateConfig("running.yaml", Bun.YAML.parse(RUNNING), {}));
    expect([...gaps.routes]).toEqual([["api", [{ path: ["headers", "request", "remove"], running: [], closest: undefined }]]]);
    expect(gaps.clusters.get("api")).toEqual([
      { path: ["health_check", "expected_statuses"], running: [], closest: undefined },
      { path: ["health_check", "healthy_threshold"], running: 4294967296, closest: 2 },
    ]);
    expect(gaps.clusters.has("other")).toBe(false);
  });

  test("a snapshot that would silently turn such a part into its closest v1 form is refused at that path; one that sets it otherwise, or leaves the cluster out, is not", () => {
    const running = validateConfig("running.yaml", Bun.YAML.parse(RUNNING), {});
    const mirror = snapshotDocument(create(SnapshotSchema, {
      routes: [{ name: "api", to: "api" }],
      clusters: { api: { endpoints: [{ address: "127.0.0.1:1" }], healthCheck: { path: "/healthz" } }, other: { endpoints: [{ address: "127.0.0.1:2" }] } },
    }));
    expect(droppedParts(running, mirror)).toEqual([
      { path: "routes[0].headers.request.remove", message: "the running config has [] here, which a v1 push cannot express; this push would change it to unset. Change it with the config file or PUT /config first" },
      { path: "clusters.api.health_check.expected_statuses", message: "the running config has [] here, which a v1 push cannot express; this push would change it to unset. Change it with the config file or PUT /config first" },
      { path: "clusters.api.health_check.healthy_threshold", message: "the running config has 4294967296 here, which a v1 push cannot express; this push would change it to 2. Change it with the config file or PUT /config first" },
    ]);
    const changed = snapshotDocument(create(SnapshotSchema, {
      routes: [{ name: "api", to: "api", headers: { request: { remove: ["x-internal"] } } }],
      clusters: { api: { endpoints: [{ address: "127.0.0.1:1" }], healthCheck: { path: "/healthz", expectedStatuses: [200], healthyThreshold: 3 } } },
    }));
    expect(droppedParts(running, changed)).toEqual([]);
    expect(droppedParts(running, snapshotDocument(create(SnapshotSchema, { routes: [{ to: "x" }], clusters: { x: { endpoints: [{ address: "127.0.0.1:3" }] } } })))).toEqual([]);
  });
});

test("the README's push examples are snapshots this proxy takes (decoded as the JSON codec does, then validated)", async () => {
  const readme = await Bun.file(join(import.meta.dir, "../../README.md")).text();
  const section = readme.slice(readme.indexOf("## Config push"), readme.indexOf("## Config reference"));
  const bodies = [...section.matchAll(/PushSnapshot \\\n(?:.*\\\n)*?\s+-d '(\{[\s\S]*?\})'\n/g)].map((m) => JSON.parse(m[1]!) as JsonObject);
  expect(bodies).toHaveLength(2);
  const base = validateConfig("file.yaml", {
    listeners: [{ port: 8080 }],
    rate_limits: { "per-ip": { key: "client_ip", rate: "10/s" } },
    auth: { "partner-keys": { type: "api_key", keys: [{ name: "p", sha256: "cd".repeat(32) }] } },
    caches: { main: { path: "/tmp/switchyard-readme-test.db" } },
  }, {});
  for (const body of bodies) {
    const snapshot = fromJson(SnapshotSchema, body, { ignoreUnknownFields: false });
    const pushed = validateLiteral("(push)", withSnapshot(configDocument(base), snapshotDocument(snapshot)));
    expect(pushed.routes.map((r) => r.name)).toEqual(snapshot.routes.map((r) => r.name));
  }
});
