/** Discovery: endpoints from a watched file, DNS A/AAAA and DNS SRV, changing under a running proxy. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { startSrvServer, type SrvRecord } from "../helpers/dns-server.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let a: Upstream;
let b: Upstream;
let proxy: TestProxy;
let srv: Awaited<ReturnType<typeof startSrvServer>>;
let srvRecords: SrvRecord[] = [];
const dir = tempDir();
const endpointsFile = dir.file("endpoints.yaml");

beforeAll(async () => {
  a = startUpstream(() => new Response("a"));
  b = startUpstream(() => new Response("b"));
  writeFileSync(endpointsFile, `endpoints:\n  - ${a.origin}\n`);
  srvRecords = [{ priority: 10, weight: 1, port: a.port!, target: "127.0.0.1" }];
  srv = await startSrvServer(() => srvRecords);
  proxy = await startProxy({
    routes: [
      { match: { path: { prefix: "/file" } }, to: "from-file" },
      { match: { path: { prefix: "/dns" } }, to: "from-dns" },
      { match: { path: { prefix: "/srv" } }, to: "from-srv" },
    ],
    clusters: {
      "from-file": { discovery: { type: "file", path: endpointsFile, refresh: "100ms" }, outlier: { consecutive_5xx: 1000 } },
      "from-dns": { discovery: { type: "dns", host: "localhost", port: b.port!, family: 4 } },
      "from-srv": { discovery: { type: "srv", name: "_http._tcp.backend.test", servers: [srv.address], refresh: "100ms" } },
    },
  });
});
afterAll(async () => {
  await proxy.stop();
  a.stop(true);
  b.stop(true);
  srv.stop();
  dir.cleanup();
});

const cluster = (name: string) => proxy.running.state.runtime.current.clusters.get(name)!;
const addresses = (name: string) => cluster(name).endpoints.map((e) => e.origin).sort();
const answers = async (path: string, n = 6) => {
  const got = new Set<string>();
  for (let i = 0; i < n; i++) got.add(await (await fetch(proxy.origin + path)).text());
  return got;
};

test("file: endpoints follow the file; a broken file keeps the last good list; known endpoints keep their health", async () => {
  await waitFor("file read", () => addresses("from-file").length === 1);
  expect(await answers("/file")).toEqual(new Set(["a"]));
  const healthOfA = cluster("from-file").endpoints[0]!.health;
  writeFileSync(endpointsFile, `endpoints:\n  - ${a.origin}\n  - { url: "${b.origin}", weight: 1 }\n`);
  await waitFor("b added", () => addresses("from-file").length === 2, 3000);
  expect(await answers("/file")).toEqual(new Set(["a", "b"]));
  expect(cluster("from-file").endpoints.find((e) => e.origin === a.origin)!.health).toBe(healthOfA);
  writeFileSync(endpointsFile, "endpoints: [ {{{ nonsense");
  // A resolution that reads the broken file (the second: the first may have started before the write) changes nothing.
  await cluster("from-file").refreshDiscovery();
  expect(await cluster("from-file").refreshDiscovery()).toBe(false);
  expect(addresses("from-file")).toHaveLength(2);
  writeFileSync(endpointsFile, JSON.stringify([b.origin]));
  await waitFor("a removed", () => addresses("from-file").length === 1, 3000);
  expect(await answers("/file")).toEqual(new Set(["b"]));
});

test("dns: every A record of the host becomes an endpoint", async () => {
  await waitFor("dns resolved", () => addresses("from-dns").length > 0);
  expect(addresses("from-dns")).toEqual([`http://127.0.0.1:${b.port}`]);
  expect(await answers("/dns")).toEqual(new Set(["b"]));
});

test("srv: targets, ports and weights of the lowest priority; changes are picked up", async () => {
  await waitFor("srv resolved", () => addresses("from-srv").length === 1);
  expect(await answers("/srv")).toEqual(new Set(["a"]));
  srvRecords = [
    { priority: 10, weight: 3, port: b.port!, target: "127.0.0.1" },
    { priority: 10, weight: 1, port: a.port!, target: "127.0.0.1" },
    { priority: 20, weight: 1, port: 1, target: "127.0.0.1" }, // a backup priority: not used
  ];
  await waitFor("srv changed", () => addresses("from-srv").length === 2, 3000);
  const weights = Object.fromEntries(cluster("from-srv").endpoints.map((e) => [e.port, e.weight]));
  expect(weights).toEqual({ [a.port!]: 1, [b.port!]: 3 });
  expect(await answers("/srv", 10)).toEqual(new Set(["a", "b"]));
});

test("a cluster needs endpoints or discovery, not both", async () => {
  const { validateConfig } = await import("../../src/config/load.ts");
  expect(() => validateConfig("t", { listeners: [{ port: 0 }], clusters: { c: { endpoints: ["x:1"], discovery: { type: "file", path: "/x" } } } })).toThrow("give exactly one of endpoints or discovery");
});
