/** A proxy listener with `health_checks: true` answers GET/HEAD /healthz and /readyz itself and proxies everything else. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let up: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  up = recordingUpstream("from upstream");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, health_checks: true }],
    routes: [{ name: "all", match: { path: { prefix: "/" } }, to: "main" }],
    clusters: { main: { endpoints: [up.origin] } },
  });
});

afterAll(async () => {
  await proxy.stop();
  up.stop();
});

test("GET and HEAD of the health paths are answered by the listener, with or without a query", async () => {
  for (const path of ["/healthz", "/healthz?probe=1", "/readyz"]) {
    const res = await fetch(proxy.origin + path);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: expect.stringMatching(/^(ok|ready)$/) });
  }
  const head = await fetch(proxy.origin + "/readyz", { method: "HEAD" });
  expect(head.status).toBe(200);
  expect(up.seen.length).toBe(0);
});

test("other methods on the health paths, and other paths, are proxied", async () => {
  const post = await fetch(proxy.origin + "/healthz", { method: "POST", body: "x" });
  expect(await post.text()).toBe("from upstream");
  const near = await fetch(proxy.origin + "/healthz/deeper");
  expect(await near.text()).toBe("from upstream");
  expect(up.seen.map((r) => `${r.method} ${r.url.pathname}`)).toEqual(["POST /healthz", "GET /healthz/deeper"]);
});
