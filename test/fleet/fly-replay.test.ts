/**
 * Fly.io regions through the CLI, with the environment Fly gives every machine (FLY_REGION,
 * FLY_MACHINE_ID): a write on a `fly_replay` route is answered with fly-replay outside the primary
 * region and proxied in it; the machine and region are in access log lines and span resources.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { hostname } from "node:os";
import type { ConfigInput } from "../../src/config/schema.ts";
import { startCollector } from "../helpers/collector.ts";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { waitFor } from "../helpers/tmp.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

const up = recordingUpstream("from-upstream");
const collector = startCollector();
const cleanups: (() => unknown)[] = [];
let iad: ProxyProcess;
let ams: ProxyProcess;
let offFly: ProxyProcess;

const config = (): ConfigInput => ({
  listeners: [{ address: "127.0.0.1", port: 0 }],
  shutdown: { drain_timeout: "1s" },
  routes: [
    { name: "writes", match: { path: { prefix: "/orders" } }, to: "up", fly_replay: { region: "ams" } },
    { name: "deletes-only", match: { path: { prefix: "/carts" } }, to: "up", fly_replay: { region: "ams", methods: ["DELETE"] } },
  ],
  clusters: { up: { endpoints: [up.origin] } },
  telemetry: { tracing: { endpoint: collector.url, flush_interval: "20ms" } },
});

async function spawn(env: Record<string, string>): Promise<ProxyProcess> {
  const file = writeTempConfig(config());
  cleanups.push(file.cleanup);
  const proxy = await spawnProxy(file.file, env);
  cleanups.push(() => proxy.stop());
  return proxy;
}

beforeAll(async () => {
  // Off Fly.io the variables are unset: the spawned process must not inherit ours.
  delete process.env.FLY_REGION;
  delete process.env.FLY_MACHINE_ID;
  [iad, ams, offFly] = await Promise.all([
    spawn({ FLY_REGION: "iad", FLY_MACHINE_ID: "machine-iad-1" }),
    spawn({ FLY_REGION: "ams", FLY_MACHINE_ID: "machine-ams-1" }),
    spawn({}),
  ]);
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  collector.stop();
  up.stop(true);
});

const send = (proxy: ProxyProcess, method: string, path: string, headers: Record<string, string> = {}) =>
  fetch(`${proxy.origin}${path}`, { method, headers, body: method === "GET" || method === "HEAD" ? undefined : "{}" });

test("outside the primary region a write is answered with fly-replay at once and never reaches the upstream; reads are proxied", async () => {
  const before = up.seen.length;
  const res = await send(iad, "POST", "/orders/7");
  expect(res.status).toBe(409);
  expect(res.headers.get("fly-replay")).toBe("region=ams");
  expect(((await res.json()) as { error: string }).error).toBe("fly_replay");
  for (const method of ["PUT", "PATCH", "DELETE"]) expect((await send(iad, method, "/orders/7")).headers.get("fly-replay")).toBe("region=ams");
  expect(up.seen.length).toBe(before);
  const read = await send(iad, "GET", "/orders/7");
  expect(read.status).toBe(200);
  expect(await read.text()).toBe("from-upstream");
  // Only the methods listed: a POST on /carts stays, a DELETE goes.
  expect((await send(iad, "POST", "/carts/1")).status).toBe(200);
  expect((await send(iad, "DELETE", "/carts/1")).headers.get("fly-replay")).toBe("region=ams");
  expect(up.seen.length).toBe(before + 2);
});

test("in the primary region, off Fly.io, and for a request Fly already replayed, writes are proxied", async () => {
  for (const [proxy, headers] of [[ams, {}], [offFly, {}], [iad, { "fly-replay-src": "instance=machine-lhr-1;region=lhr;t=1" }]] as const) {
    const res = await send(proxy, "POST", "/orders/7", headers);
    expect(res.status).toBe(200);
    expect(res.headers.get("fly-replay")).toBeNull();
  }
});

test("access log lines name the machine and the region; off Fly.io, the host name and null", async () => {
  await send(iad, "GET", "/orders/log-check");
  await send(offFly, "GET", "/orders/log-check");
  const line = (proxy: ProxyProcess) => waitFor("an access log line", () =>
    proxy.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.path === "/orders/log-check"));
  expect(await line(iad)).toMatchObject({ instance: "machine-iad-1", region: "iad" });
  expect(await line(offFly)).toMatchObject({ instance: hostname(), region: null });
  const replayed = iad.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.method === "PATCH");
  expect(replayed).toMatchObject({ status: 409, route: "writes", cluster: null, instance: "machine-iad-1" }); // answered here, not an error
});

test("spans carry cloud.region and service.instance.id as resource attributes", async () => {
  await send(iad, "GET", "/orders/span-check");
  const span = await waitFor("the server span", () => collector.spans.find((s) => s.kind === "server" && s.attributes["url.path"] === "/orders/span-check"));
  expect(span.resource).toMatchObject({ "cloud.region": "iad", "service.instance.id": "machine-iad-1" });
  await send(offFly, "GET", "/orders/span-off-fly");
  const off = await waitFor("the server span", () => collector.spans.find((s) => s.kind === "server" && s.attributes["url.path"] === "/orders/span-off-fly"));
  expect(off.resource["service.instance.id"]).toBe(hostname());
  expect(off.resource["cloud.region"]).toBeUndefined();
});
