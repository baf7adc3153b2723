/** Request coalescing on a route without a cache: identical concurrent GETs share one upstream answer. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Socket } from "bun";
import { sha256Hex } from "../../src/filters/auth/api-key.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { type Gate, gate, rawUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let trickle: ReturnType<typeof rawUpstream>;
let trickleHits = 0;
/** The trickle upstream's connection, for the test to send the second part when it chooses. */
let trickling: Socket<undefined> | undefined;
let proxy: TestProxy;
const hits = new Map<string, number>();
/** The upstream holds every request here until the test has seen the proxy do its part. */
let held: Gate = gate();

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const path = new URL(req.url).pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    await held.pass();
    if (path === "/cookie") return new Response("mine", { headers: { "set-cookie": "sid=1" } });
    if (path === "/big") return new Response("b".repeat(4096));
    if (path === "/keyed") return new Response(`for ${req.headers.get("x-client-key")}`);

    return new Response(`shared ${path}`, { headers: { "cache-control": "no-store" } });
  });
  // Bun.serve drops Content-Length from streamed bodies: a raw upstream sends it, then the body in two parts.
  trickle = rawUpstream((socket) => {
    trickleHits++;
    // Over 64 KiB, so that the proxy streams it rather than reading it whole to keep its length.
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${100_000}\r\n\r\n${"a".repeat(40_000)}`);
    trickling = socket; // the rest when the test says
  });
  proxy = await startProxy({
    auth: { "client-keys": { type: "api_key", header: "x-client-key", strip_key: false, keys: [{ name: "a", sha256: sha256Hex("key-of-client-a-0123") }, { name: "b", sha256: sha256Hex("key-of-client-b-0123") }] } },
    routes: [
      { name: "trickle", match: { path: { prefix: "/trickle" } }, to: "t", coalesce: {} },
      { name: "keyed", match: { path: { prefix: "/keyed" } }, to: "u", coalesce: {}, filters: [{ type: "auth", providers: ["client-keys"] }] },
      { name: "api", to: "u", coalesce: { max_body: "1KiB" } },
    ],
    clusters: { u: { endpoints: [up.origin] }, t: { endpoints: [trickle.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  trickle.stop();
});

const waiters = () => metrics.collapsedWaiters.sum((l) => l[0] === "coalesce");

/**
 * `n` concurrent GETs; the upstream holds them until `at.upstream` of them (default 1, the
 * leader) have reached it and the others wait for a leader's answer, then answers (followers
 * that go upstream on their own afterwards pass at once).
 */
async function burst(path: string, n: number, headers: Record<string, string> = {}, at: { upstream?: number } = {}) {
  const upstream = at.upstream ?? 1;
  const followers = n - upstream;
  held = gate();
  const before = waiters();
  const answers = Promise.all(Array.from({ length: n }, () => fetch(proxy.origin + path, { headers }).then(async (r) => ({ text: await r.text(), coalesced: r.headers.get("x-coalesced") }))));
  await held.arrived(upstream);
  await waitFor(`${followers} followers of ${path}`, () => waiters() - before >= followers);
  held.open();
  return answers;
}

test("50 identical concurrent GETs: one upstream request, everyone gets the answer (even no-store: nothing is stored)", async () => {
  const results = await burst("/same", 50);
  expect(new Set(results.map((r) => r.text))).toEqual(new Set(["shared /same"]));
  expect(hits.get("/same")).toBe(1);
  expect(results.filter((r) => r.coalesced === "true")).toHaveLength(49);
});

test("requests with Range or preconditions never share (their answers differ)", async () => {
  const before = hits.get("/ranged") ?? 0;
  await burst("/ranged", 4, { range: "bytes=0-3" }, { upstream: 4 }); // all four at the upstream at once
  expect((hits.get("/ranged") ?? 0) - before).toBe(4);
});

test("requests with credentials never share; answers with Set-Cookie or over max_body are not shared", async () => {
  await burst("/private", 5, { authorization: "Bearer x" }, { upstream: 5 });
  expect(hits.get("/private")).toBe(5);
  await burst("/cookie", 5);
  expect(hits.get("/cookie")).toBeGreaterThan(1);
  const big = await burst("/big", 5);
  expect(big.every((r) => r.text.length === 4096)).toBe(true);
  expect(hits.get("/big")).toBeGreaterThan(1);
});

test("authenticated requests never share, whatever header carried the credential", async () => {
  held = gate();
  const send = (key: string) => Promise.all(Array.from({ length: 3 }, () => fetch(proxy.origin + "/keyed", { headers: { "x-client-key": key } }).then(async (r) => ({ text: await r.text() }))));
  const both = Promise.all([send("key-of-client-a-0123"), send("key-of-client-b-0123")]);
  await held.arrived(6); // all six at the upstream at once: none waited for another's answer
  held.open();
  const [a, b] = await both;
  expect(a.map((r) => r.text)).toEqual(Array(3).fill("for key-of-client-a-0123"));
  expect(b.map((r) => r.text)).toEqual(Array(3).fill("for key-of-client-b-0123"));
  expect(hits.get("/keyed")).toBe(6);
});

test("followers are streamed the answer as it arrives, not after it is complete", async () => {
  let withFirstPart = 0;
  const reading = Promise.all(
    Array.from({ length: 5 }, async () => {
      const res = await fetch(proxy.origin + "/trickle");
      const reader = res.body!.getReader();
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (text === "") withFirstPart++;
        text += new TextDecoder().decode(value);
      }
      return text;
    }),
  );
  // Everyone has the first part while the upstream still holds back the second.
  await waitFor("the first part at all five clients", () => withFirstPart === 5);
  trickling!.write("b".repeat(60_000));
  const texts = await reading;
  expect(new Set(texts)).toEqual(new Set(["a".repeat(40_000) + "b".repeat(60_000)]));
  expect(trickleHits).toBe(1);
});
