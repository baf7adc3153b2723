/** Mirroring: a copy to the shadow, fire and forget; the client never waits for or sees the shadow. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { shadowHost } from "../../src/proxy/mirror.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { recordingUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

let main: ReturnType<typeof recordingUpstream>;
let shadow: Upstream;
const shadowSeen: { method: string; path: string; host: string; body: string }[] = [];
let proxy: TestProxy;

beforeAll(async () => {
  main = recordingUpstream("main answer");
  shadow = startUpstream(async (req) => {
    const url = new URL(req.url);
    shadowSeen.push({ method: req.method, path: url.pathname + url.search, host: req.headers.get("host") ?? "", body: await req.text() });
    if (url.pathname.startsWith("/slow")) await Bun.sleep(2000); // the delay is the scenario: a shadow slower than the client may wait
    return new Response("shadow answer", { status: 500 });
  });
  proxy = await startProxy({
    routes: [
      { name: "all", match: { path: { prefix: "/all" } }, to: "main", mirror: { cluster: "shadow", max_body: "1KiB" } },
      // A cluster of its own, so that its copy still in flight does not count in copiesSettled().
      { name: "slow", match: { path: { prefix: "/slow" } }, to: "main", mirror: { cluster: "slow-shadow" } },
      { name: "dead", match: { path: { prefix: "/dead" } }, to: "main", mirror: { cluster: "dead" } },
      { name: "some", match: { path: { prefix: "/some" } }, to: "main", mirror: { cluster: "shadow", percent: 30 } },
    ],
    clusters: { main: { endpoints: [main.origin] }, shadow: { endpoints: [shadow.origin] }, "slow-shadow": { endpoints: [shadow.origin] }, dead: { endpoints: ["127.0.0.1:1"] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  main.stop(true);
  shadow.stop(true);
});

/**
 * Every copy sent so far has been answered: the shadow recorded it before answering, and a copy
 * is counted in the shadow cluster's requests before the main request is forwarded.
 */
const copiesSettled = () => waitFor("the copies answered", () => proxy.running.state.runtime.current.clusters.get("shadow")!.limits.requests === 0);

test("the shadow gets the same method, path, query and body, with a -shadow Host; the client gets the main answer", async () => {
  shadowSeen.length = 0;
  const res = await fetch(`${proxy.origin}/all/x?q=1`, { method: "POST", body: "payload", headers: { host: "api.example.com:8080" } });
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("main answer");
  await waitFor("shadow request", () => shadowSeen.length === 1);
  expect(shadowSeen[0]).toEqual({ method: "POST", path: "/all/x?q=1", host: "api.example.com-shadow:8080", body: "payload" });
  expect(main.seen[main.seen.length - 1]!.body).toBe("payload");
});

test("a body over max_body is not mirrored, and still reaches the main cluster whole", async () => {
  shadowSeen.length = 0;
  const big = "b".repeat(4096);
  const res = await fetch(`${proxy.origin}/all/big`, { method: "POST", body: big });
  expect(res.status).toBe(200);
  expect(main.seen[main.seen.length - 1]!.body).toBe(big);
  await copiesSettled();
  expect(shadowSeen).toHaveLength(0);
});

test("a slow or dead shadow never delays the client", async () => {
  let started = performance.now();
  expect((await fetch(`${proxy.origin}/slow`)).status).toBe(200);
  expect(performance.now() - started).toBeLessThan(1000);
  started = performance.now();
  expect((await fetch(`${proxy.origin}/dead`)).status).toBe(200);
  expect(performance.now() - started).toBeLessThan(1000);
});

test("percent samples the copies", async () => {
  shadowSeen.length = 0;
  for (let i = 0; i < 200; i++) await (await fetch(`${proxy.origin}/some/${i}`)).text();
  await copiesSettled();
  const share = shadowSeen.filter((s) => s.path.startsWith("/some/")).length / 200;
  expect(share).toBeGreaterThan(0.18);
  expect(share).toBeLessThan(0.42);
});

test("shadow host naming", () => {
  expect(shadowHost("a.example")).toBe("a.example-shadow");
  expect(shadowHost("a.example:8080")).toBe("a.example-shadow:8080");
  expect(shadowHost("[::1]:80")).toBe("[::1]-shadow:80");
});

test("an untrusted shadow never sees Authorization or Cookie, even when the primary cluster is trusted", async () => {
  const seen: Record<string, string>[] = [];
  const shadow2 = startUpstream((req) => {
    seen.push(Object.fromEntries(req.headers));
    return new Response("x");
  });
  const p = await startProxy({
    routes: [{ to: "main", mirror: { cluster: "shadow" } }],
    clusters: { main: { endpoints: [main.origin] }, shadow: { endpoints: [shadow2.origin], trusted: false } },
  });
  try {
    await (await fetch(`${p.origin}/m`, { headers: { authorization: "Bearer secret", cookie: "sid=1" } })).text();
    await waitFor("mirrored", () => seen.length === 1);
    expect(seen[0]!.authorization).toBeUndefined();
    expect(seen[0]!.cookie).toBeUndefined();
    expect(main.seen.at(-1)!.headers.authorization).toBe("Bearer secret");
  } finally {
    await p.stop();
    shadow2.stop(true);
  }
});
