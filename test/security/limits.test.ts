/**
 * Limits on what a client may send and how slowly: header count and bytes (431), URL length (414),
 * body size per route (413), slow heads (slowloris), slow bodies, and a flood of idle connections.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { dribble, openIdleSockets, rawRequest } from "../helpers/raw.ts";
import { waitFor } from "../helpers/tmp.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let app: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  app = recordingUpstream("app");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, max_headers: 10, max_header_bytes: "1KiB", max_url_length: "128B", idle_timeout: "2s" }],
    routes: [
      { name: "small", match: { path: { prefix: "/small" } }, to: "app", max_request_body: "1KiB" },
      { name: "slow", match: { path: { prefix: "/slow" } }, to: "app", timeouts: { idle: "1s", request: "30s" } },
      { name: "rest", to: "app" },
    ],
    clusters: { app: { endpoints: [app.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  app.stop(true);
});

const json = (body: string) => JSON.parse(body) as { error: string; message: string; request_id: string };
const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: v\r\n`).join("");

describe("the request head", () => {
  test("more header fields than max_headers: a JSON 431", async () => {
    expect((await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\n${fields(8)}\r\n`)).status).toBe(200);
    const res = await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\n${fields(12)}\r\n`);
    expect(res.status).toBe(431);
    expect(json(res.body)).toMatchObject({ error: "headers_too_large", message: "the request has more than 10 header fields" });
  });

  test("a head over max_header_bytes: a JSON 431; over Bun's own 16 KiB, Bun's plain 431", async () => {
    expect((await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(800)}\r\n\r\n`)).status).toBe(200);
    const res = await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(1100)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(json(res.body).error).toBe("headers_too_large");
    expect((await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(17 * 1024)}\r\n\r\n`)).status).toBe(431);
  });

  test("a path plus query over max_url_length: a JSON 414", async () => {
    expect((await rawRequest(proxy.port, `GET /${"a".repeat(100)}?q=1 HTTP/1.1\r\nHost: x\r\n\r\n`)).status).toBe(200);
    for (const target of [`/${"a".repeat(200)}`, `/a?${"q".repeat(200)}`]) {
      const res = await rawRequest(proxy.port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(res.status).toBe(414);
      expect(json(res.body).error).toBe("uri_too_long");
    }
  });
});

describe("the request body", () => {
  test("a route's max_request_body: a declared larger body is a JSON 413 and never forwarded", async () => {
    const before = app.seen.length;
    const res = await fetch(`${proxy.origin}/small`, { method: "POST", body: "x".repeat(2048) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: "body_too_large", message: "the request body is larger than 1024 bytes" });
    expect(app.seen.length).toBe(before);
    // Other routes keep the listener's limit; within the route's it passes.
    expect((await fetch(`${proxy.origin}/other`, { method: "POST", body: "x".repeat(2048) })).status).toBe(200);
    expect((await fetch(`${proxy.origin}/small`, { method: "POST", body: "x".repeat(1000) })).status).toBe(200);
  });

  test("a chunked body is cut as soon as it passes the route's limit: 413", async () => {
    const before = app.seen.length;
    const chunk = `400\r\n${"y".repeat(1024)}\r\n`;
    const res = await rawRequest(proxy.port, `POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}${chunk}${chunk}0\r\n\r\n`);
    expect(res.status).toBe(413);
    expect(json(res.body).error).toBe("body_too_large");
    await Bun.sleep(50); // a negative check: nothing reaches the upstream meanwhile
    expect(app.seen.length).toBe(before); // the upstream's read of the body failed: no complete request
  });

  test("a client that sends half a fixed-length body and stalls is cut after the route's idle timeout", async () => {
    const before = app.seen.length;
    const started = performance.now();
    const res = await rawRequest(proxy.port, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + "z".repeat(50), { quietMs: 10_000, timeoutMs: 10_000 });
    const ms = performance.now() - started;
    expect(res.closed).toBe(true);
    // Bun's socket timer: 1 s, on its ~4 s granularity.
    expect(ms).toBeGreaterThan(900);
    expect(ms).toBeLessThan(7_000);
    await Bun.sleep(50); // a negative check: nothing reaches the upstream meanwhile
    expect(app.seen.length).toBe(before);
  }, 15_000);

  test("a chunked body that stalls gets a JSON 408 after the route's idle timeout", async () => {
    const started = performance.now();
    const res = await rawRequest(proxy.port, "POST /slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", { quietMs: 5_000, timeoutMs: 5_000 });
    const ms = performance.now() - started;
    expect(res.status).toBe(408);
    expect(json(res.body).error).toBe("client_timeout");
    expect(ms).toBeGreaterThan(900);
    expect(ms).toBeLessThan(3_000);
    expect(await proxy.logOf(json(res.body).request_id)).toMatchObject({ status: 408, error: "client_timeout", route: "slow" });
  }, 10_000);
});

describe("slow heads (slowloris)", () => {
  const head = `GET /never HTTP/1.1\r\nHost: x\r\nX-Slow: ${"a".repeat(400)}\r\n\r\n`;

  test("a head trickled byte by byte on a new connection is cut within Bun's fixed ~12 s; the proxy keeps serving", async () => {
    const before = app.seen.length;
    let trickling = 0;
    const slow = Array.from({ length: 20 }, () => dribble(proxy.port, head, { gapMs: 200, timeoutMs: 20_000, onTrickle: () => trickling++ }));
    await waitFor("20 heads under way", () => trickling === 20);
    expect((await fetch(`${proxy.origin}/meanwhile`)).status).toBe(200);
    for (const r of await Promise.all(slow)) {
      expect(r.closed).toBe(true);
      expect(r.ms).toBeLessThan(15_000);
      expect(r.sent).toBeLessThan(head.length); // cut before the head was complete, however busy it kept the socket
      expect(r.received).toBe("");
    }
    expect(app.seen.slice(before).map((s) => s.url.pathname)).toEqual(["/meanwhile"]);
  }, 25_000);

  test("on a kept-alive connection the next head must arrive within idle_timeout (2 s here), trickled or not", async () => {
    const r = await dribble(proxy.port, head, { gapMs: 200, timeoutMs: 15_000, first: "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" });
    expect(r.received).toStartWith("HTTP/1.1 200");
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(7_000);
    expect(r.sent).toBeLessThan(head.length);
  }, 20_000);
});

test("a kept-alive connection left silent after a proxied request is closed after idle_timeout", async () => {
  // The exchange itself runs with Bun's idle timer off; the log phase arms it again.
  const r = await dribble(proxy.port, "", { gapMs: 1_000, timeoutMs: 12_000, first: "GET /once HTTP/1.1\r\nHost: x\r\n\r\n" });
  expect(r.received).toStartWith("HTTP/1.1 200");
  expect(r.closed).toBe(true);
  expect(r.ms).toBeLessThan(7_000);
}, 15_000);

describe("a flood of connections", () => {
  test("2,000 idle sockets do not take the proxy down; a normal request is still served", async () => {
    const flood = await openIdleSockets(proxy.port, 2_000);
    try {
      expect(flood.open()).toBeGreaterThan(1_900);
      const started = performance.now();
      const res = await fetch(`${proxy.origin}/during-flood`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("app");
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      flood.closeAll();
    }
    expect((await fetch(`${proxy.origin}/after-flood`)).status).toBe(200);
  }, 30_000);
});
