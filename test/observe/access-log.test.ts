/** The access log: one JSON line per request with the fields operators need, secrets redacted, appended to. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let up: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  up = recordingUpstream("twelve bytes");
  proxy = await startProxy({
    routes: [{ name: "api", match: { path: { prefix: "/" } }, to: "backend" }],
    clusters: { backend: { endpoints: [up.origin] } },
    access_log: { redact_query: ["token", "sig"], headers: ["user-agent", "authorization", "cookie", "x-tenant"] },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

test("one line per request with route, cluster, endpoint, method, path, status, bytes and timings", async () => {
  const res = await fetch(`${proxy.origin}/orders/7?page=2`, { method: "POST", body: "0123456789", headers: { "x-request-id": "log-fields" } });
  await res.text();
  const line = await proxy.logOf("log-fields");
  expect(line).toMatchObject({
    request_id: "log-fields", route: "api", cluster: "backend", endpoint: up.origin.replace("http://", ""),
    method: "POST", path: "/orders/7?page=2", status: 200, bytes_in: 10, bytes_out: 12, attempts: 1, error: null,
    client_ip: "127.0.0.1",
  });
  expect(typeof line.time).toBe("string");
  expect(line.total_ms).toBeGreaterThanOrEqual(0);
  expect(line.upstream_ms).toBeGreaterThanOrEqual(0);
  expect((await proxy.logLines()).filter((l) => l.request_id === "log-fields")).toHaveLength(1);
});

test("configured query parameters, Authorization and Cookie are redacted; other chosen headers are logged", async () => {
  const res = await fetch(`${proxy.origin}/cb?token=s3cret&keep=1&SIG=abc&token`, {
    headers: { "x-request-id": "log-redact", authorization: "Bearer s3cret", cookie: "sid=s3cret", "x-tenant": "acme", "user-agent": "probe/1" },
  });
  await res.text();
  const line = await proxy.logOf("log-redact");
  expect(line.path).toBe("/cb?token=[redacted]&keep=1&SIG=[redacted]&token");
  expect(line.headers).toEqual({ "user-agent": "probe/1", authorization: "[redacted]", cookie: "[redacted]", "x-tenant": "acme" });
  const raw = JSON.stringify(await proxy.logLines());
  expect(raw).not.toContain("s3cret");
});

test("errors are logged with their code", async () => {
  await (await fetch(`${proxy.origin}/x`, { method: "GET", headers: { "x-request-id": "log-ok" } })).text();
  const failing = await startProxy({
    routes: [{ to: "dead" }],
    clusters: { dead: { endpoints: ["127.0.0.1:1"] } },
  });
  try {
    const res = await fetch(`${failing.origin}/boom`, { headers: { "x-request-id": "log-error" } });
    expect(res.status).toBe(502);
    const line = await failing.logOf("log-error");
    // bytes_out is what the client was sent: the JSON error body.
    const body = await res.text();
    expect(line).toMatchObject({ status: 502, error: "upstream_connect_refused", bytes_out: Buffer.byteLength(body) });
    expect(body).toContain('"request_id":"log-error"');
  } finally {
    await failing.stop();
  }
});

test("a fallback's body is counted in bytes_out, in the log and in switchyard_response_bytes_total", async () => {
  const failing = await startProxy({
    admin: { address: "127.0.0.1", port: 0 },
    routes: [{ name: "with-fallback", to: "dead", fallback: { status: 200, body: "fallback body" } }],
    clusters: { dead: { endpoints: ["127.0.0.1:1"] } },
  });
  try {
    const res = await fetch(`${failing.origin}/x`, { headers: { "x-request-id": "log-fallback" } });
    expect(await res.text()).toBe("fallback body");
    expect(await failing.logOf("log-fallback")).toMatchObject({ status: 200, fallback: "static", bytes_out: 13 });
    const head = await fetch(`${failing.origin}/x`, { method: "HEAD", headers: { "x-request-id": "log-fallback-head" } });
    expect(head.status).toBe(200);
    expect(await failing.logOf("log-fallback-head")).toMatchObject({ status: 200, bytes_out: 0 });
    const metrics = await (await fetch(`${failing.running.admin!.url.origin}/metrics`)).text();
    expect(metrics).toMatch(/^switchyard_response_bytes_total\{route="with-fallback"\} 13$/m);
  } finally {
    await failing.stop();
  }
});

test("a log file is appended to, never overwritten", async () => {
  const { tempDir } = await import("../helpers/tmp.ts");
  const dir = tempDir();
  const path = dir.file("existing.log");
  await Bun.write(path, "an older line that must survive\n");
  const p = await startProxy({ routes: [{ to: "b" }], clusters: { b: { endpoints: [up.origin] } }, access_log: { path } });
  try {
    await (await fetch(`${p.origin}/a`, { headers: { "x-request-id": "append-1" } })).text();
    const { flushAll } = await import("../../src/observe/access-log.ts");
    const { waitFor } = await import("../helpers/tmp.ts");
    await waitFor("the line of append-1", async () => (flushAll(), (await Bun.file(path).text()).includes("append-1")), 1000);
    const text = await Bun.file(path).text();
    expect(text.startsWith("an older line that must survive\n")).toBe(true);
    expect(text).toContain('"request_id":"append-1"');
  } finally {
    await p.stop();
    dir.cleanup();
  }
});
