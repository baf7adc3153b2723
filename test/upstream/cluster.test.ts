/** Balancers through the proxy: real upstreams, real requests. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let upstreams: Upstream[];
let proxy: TestProxy;

beforeAll(async () => {
  upstreams = ["a", "b", "c"].map((name) => startUpstream(() => new Response(name)));
  const endpoints = upstreams.map((u) => u.origin);
  proxy = await startProxy({
    routes: [
      { match: { path: { prefix: "/rr" } }, to: "rr" },
      { match: { path: { prefix: "/sticky" } }, to: "sticky" },
      { match: { path: { prefix: "/weighted" } }, to: "weighted" },
    ],
    clusters: {
      rr: { endpoints },
      sticky: { endpoints, balancer: { type: "maglev", hash_on: { header: "x-user" } } },
      weighted: { endpoints: [{ url: endpoints[0]!, weight: 1 }, { url: endpoints[1]!, weight: 3 }], balancer: { type: "weighted_round_robin" } },
    },
  });
});
afterAll(async () => {
  await proxy.stop();
  for (const u of upstreams) u.stop(true);
});

const hit = async (path: string, headers: Record<string, string> = {}) => (await fetch(proxy.origin + path, { headers })).text();

test("round robin spreads requests over every endpoint evenly", async () => {
  const got: string[] = [];
  for (let i = 0; i < 30; i++) got.push(await hit("/rr"));
  for (const name of ["a", "b", "c"]) expect(got.filter((g) => g === name)).toHaveLength(10);
});

test("consistent hashing on a header keeps each user on one endpoint", async () => {
  const seen = new Map<string, Set<string>>();
  for (let round = 0; round < 3; round++) {
    for (let u = 0; u < 20; u++) {
      const user = `user-${u}`;
      const set = seen.get(user) ?? new Set();
      set.add(await hit("/sticky", { "x-user": user }));
      seen.set(user, set);
    }
  }
  for (const set of seen.values()) expect(set.size).toBe(1);
  expect(new Set([...seen.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
});

test("weighted round robin honours weights 1:3", async () => {
  const got: string[] = [];
  for (let i = 0; i < 40; i++) got.push(await hit("/weighted"));
  expect(got.filter((g) => g === "a")).toHaveLength(10);
  expect(got.filter((g) => g === "b")).toHaveLength(30);
});
