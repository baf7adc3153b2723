/** Fallbacks: when the upstream side fails, a configured answer instead of the error, marked and logged. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: TestProxy;
beforeAll(async () => {
  up = startUpstream((req) => (new URL(req.url).pathname.endsWith("/503") ? new Response("busy", { status: 503 }) : new Response("fine")));
  const fallback = { status: 200, body: '{"items":[]}', headers: { "content-type": "application/json" } };
  proxy = await startProxy({
    routes: [
      { name: "dead", match: { path: { prefix: "/dead" } }, to: "dead", fallback, retry: { attempts: 2 } },
      { name: "alive", match: { path: { prefix: "/alive" } }, to: "alive", fallback },
      { name: "none", match: { path: { prefix: "/none" } }, to: "dead" },
    ],
    clusters: { dead: { endpoints: ["127.0.0.1:1"] }, alive: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

test("every try failed: the fallback answers, marked x-switchyard-fallback, and the log keeps the error", async () => {
  const res = await fetch(`${proxy.origin}/dead`, { headers: { "x-request-id": "fb-1" } });
  expect(res.status).toBe(200);
  expect(res.headers.get("x-switchyard-fallback")).toBe("static");
  expect(res.headers.get("content-type")).toBe("application/json");
  expect(res.headers.get("x-switchyard-attempts")).toBe("2");
  expect(await res.json()).toEqual({ items: [] });
  const line = await proxy.logOf("fb-1");
  expect(line).toMatchObject({ status: 200, fallback: "static", error: "upstream_connect_refused" });
});

test("a healthy upstream's answer is not replaced; without a fallback the error stands", async () => {
  const ok = await fetch(`${proxy.origin}/alive`);
  expect(await ok.text()).toBe("fine");
  expect(ok.headers.get("x-switchyard-fallback")).toBeNull();
  expect((await fetch(`${proxy.origin}/none`)).status).toBe(502);
});

test("a 503 answer (after any retries) is replaced by the fallback too", async () => {
  const res = await fetch(`${proxy.origin}/alive/503`);
  expect(res.headers.get("x-switchyard-fallback")).toBe("static");
  expect(await res.json()).toEqual({ items: [] });
});
