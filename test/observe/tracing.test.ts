/**
 * Traces end to end: a proxy with telemetry.tracing, real upstreams, and a real OTLP/HTTP collector
 * that decodes what it receives with the generated protobuf schema.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ConfigInput } from "../../src/config/schema.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { type Collector, type SeenSpan, startCollector } from "../helpers/collector.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { stall, startUpstream, type Upstream } from "../helpers/upstream.ts";
import { wsClient } from "../helpers/ws.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

let collector: Collector;
let up: Upstream;
let proxy: TestProxy;
/** The traceparent (and tracestate) each upstream request carried, by request id. */
const seen = new Map<string, { traceparent: string; tracestate: string | null }[]>();
const tries = new Map<string, number>();

function tracing(extra: Record<string, unknown> = {}): NonNullable<ConfigInput["telemetry"]>["tracing"] {
  return { endpoint: collector.url, flush_interval: "20ms", headers: { authorization: "Bearer collector-secret" }, resource: { "deployment.environment": "test" }, ...extra };
}

beforeAll(async () => {
  collector = startCollector();
  up = startUpstream(async (req, server) => {
    const path = new URL(req.url).pathname;
    if (path === "/ws" && server.upgrade(req, { data: undefined })) return undefined;
    const id = req.headers.get("x-request-id") ?? "";
    const list = seen.get(id) ?? [];
    list.push({ traceparent: req.headers.get("traceparent") ?? "", tracestate: req.headers.get("tracestate") });
    seen.set(id, list);
    const n = (tries.get(id) ?? 0) + 1;
    tries.set(id, n);
    if (path.startsWith("/flaky") && n === 1) return new Response("busy", { status: 503 });
    if (path === "/slow-body") {
      // Headers at once, the body 300 ms later: the spans must end with the body, not the headers.
      return new Response(new ReadableStream({
        async start(c) {
          c.enqueue(new TextEncoder().encode("a".repeat(70_000)));
          await Bun.sleep(300); // the delay is the scenario (the spans' lower bound)
          c.enqueue(new TextEncoder().encode("end"));
          c.close();
        },
      }));
    }
    if (path === "/boom") return new Response("no", { status: 500 });
    return new Response("ok");
  }, { message(ws, m) { ws.send(m); } });
  proxy = await startProxy({
    routes: [
      { name: "flaky", match: { path: { prefix: "/flaky" } }, to: "up", retry: { attempts: 3, retry_on: ["5xx"], backoff: { base: "1ms", max: "5ms" } } },
      { name: "dead", match: { path: { prefix: "/dead" } }, to: "dead" },
      { name: "ws", match: { path: { prefix: "/ws" } }, to: "up", websocket: true },
      { name: "main", match: { path: { prefix: "/" } }, to: "up" },
    ],
    clusters: { up: { endpoints: [up.origin] }, dead: { endpoints: ["127.0.0.1:1"] } },
    telemetry: { tracing: tracing() },
  });
});

afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  collector.stop();
});

/** Sends a request and waits until the collector holds `count` spans of its trace. */
async function traced(path: string, id: string, headers: Record<string, string> = {}, count = 2, init: RequestInit = {}): Promise<{ res: Response; body: string; spans: SeenSpan[]; server: SeenSpan; clients: SeenSpan[] }> {
  const res = await fetch(`${proxy.origin}${path}`, { ...init, headers: { "x-request-id": id, "user-agent": "trace-test/1.0", ...headers } });
  const body = await res.text();
  const spans = await waitFor(`${count} spans of ${id}`, () => {
    const mine = collector.spans.filter((s) => s.attributes["switchyard.request_id"] === id);
    const server = mine[0];
    if (server === undefined) return undefined;
    const all = collector.trace(server.traceId).filter((s) => s.spanId === server.spanId || s.parentSpanId === server.spanId);
    return all.length >= count ? all : undefined;
  });
  const server = spans.find((s) => s.kind === "server")!;
  return { res, body, spans, server, clients: spans.filter((s) => s.kind === "client").sort((a, b) => Number(a.startNs - b.startNs)) };
}

describe("spans of a proxied request", () => {
  test("an incoming sampled traceparent is continued: server span → client span → the traceparent the upstream saw", async () => {
    const { res, server, clients } = await traced("/items/7?x=1", "t-continue", { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: "vendor=abc,other=1" });
    expect(res.status).toBe(200);
    expect(server.traceId).toBe(TRACE);
    expect(server.parentSpanId).toBe(PARENT);
    expect(server.traceState).toBe("vendor=abc,other=1");
    expect(server.name).toBe("GET main");
    expect(server.status).toBe("unset");
    expect(server.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/items/7",
      "url.scheme": "http",
      "server.address": "127.0.0.1",
      "server.port": proxy.port,
      "http.route": "main",
      "http.response.status_code": 200,
      "client.address": "127.0.0.1",
      "user_agent.original": "trace-test/1.0",
      "network.protocol.version": "1.1",
    });
    expect(server.attributes["error.type"]).toBeUndefined();
    expect(clients).toHaveLength(1);
    const client = clients[0]!;
    expect(client.traceId).toBe(TRACE);
    expect(client.parentSpanId).toBe(server.spanId);
    expect(client.name).toBe("GET");
    expect(client.attributes).toMatchObject({ "http.request.method": "GET", "server.address": "127.0.0.1", "server.port": up.port, "http.response.status_code": 200 });
    expect(client.attributes["http.request.resend_count"]).toBeUndefined();
    // The upstream saw our client span as its parent, sampled, and the caller's tracestate.
    expect(seen.get("t-continue")).toEqual([{ traceparent: `00-${TRACE}-${client.spanId}-01`, tracestate: "vendor=abc,other=1" }]);
    // Ids are distinct and well-formed; times nest.
    expect(new Set([PARENT, server.spanId, client.spanId]).size).toBe(3);
    expect(client.startNs).toBeGreaterThanOrEqual(server.startNs);
    expect(client.endNs).toBeLessThanOrEqual(server.endNs);
    expect(server.endNs).toBeGreaterThan(server.startNs);
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    expect(nowNs - server.startNs).toBeLessThan(60_000_000_000n);
    expect(nowNs - server.startNs).toBeGreaterThan(0n);
    // Resource, scope and the export request's own headers.
    expect(server.resource).toMatchObject({ "service.name": "switchyard", "deployment.environment": "test", "process.pid": process.pid });
    expect(typeof server.resource["service.instance.id"]).toBe("string");
    expect(server.scope).toBe("switchyard");
    const exported = collector.exports.at(-1)!;
    expect(exported.headers["content-type"]).toBe("application/x-protobuf");
    expect(exported.headers.authorization).toBe("Bearer collector-secret");
  });

  test("without a traceparent a new trace starts: a root server span, sampled upstream", async () => {
    const { server, clients } = await traced("/fresh", "t-root");
    expect(server.parentSpanId).toBe("");
    expect(server.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(server.traceId).not.toBe(TRACE);
    const [, traceId, parentId, flags] = TRACEPARENT.exec(seen.get("t-root")![0]!.traceparent)!;
    expect([traceId, parentId, flags]).toEqual([server.traceId, clients[0]!.spanId, "01"]);
  });

  test("an invalid traceparent is replaced, and its tracestate is not recorded", async () => {
    const { server } = await traced("/bad-parent", "t-bad", { traceparent: `00-${"0".repeat(32)}-${PARENT}-01`, tracestate: "vendor=x" });
    expect(server.parentSpanId).toBe("");
    expect(server.traceId).not.toBe("0".repeat(32));
    expect(server.traceState).toBe("");
  });

  test("spans end when the response body ends, not when its headers arrive", async () => {
    const { body, server, clients } = await traced("/slow-body", "t-slow");
    expect(body.endsWith("end")).toBe(true);
    expect(Number(server.endNs - server.startNs) / 1e6).toBeGreaterThanOrEqual(280);
    expect(Number(clients[0]!.endNs - clients[0]!.startNs) / 1e6).toBeGreaterThanOrEqual(280);
  });

  test("a retry gives two client spans, each the parent the upstream saw on its own try", async () => {
    const { res, server, clients } = await traced("/flaky/1", "t-retry", {}, 3);
    expect(res.status).toBe(200);
    expect(clients).toHaveLength(2);
    const [first, second] = clients as [SeenSpan, SeenSpan];
    expect(first.parentSpanId).toBe(server.spanId);
    expect(second.parentSpanId).toBe(server.spanId);
    expect(first.spanId).not.toBe(second.spanId);
    expect(seen.get("t-retry")!.map((s) => s.traceparent)).toEqual([`00-${server.traceId}-${first.spanId}-01`, `00-${server.traceId}-${second.spanId}-01`]);
    expect(first.attributes).toMatchObject({ "http.response.status_code": 503, "error.type": "503" });
    expect(first.status).toBe("error");
    expect(first.attributes["http.request.resend_count"]).toBeUndefined();
    expect(second.attributes).toMatchObject({ "http.response.status_code": 200, "http.request.resend_count": 1 });
    expect(second.status).toBe("unset");
    // The failed try ended before the retry started.
    expect(first.endNs).toBeLessThanOrEqual(second.startNs);
    expect(server.attributes["http.response.status_code"]).toBe(200);
    expect(server.status).toBe("unset");
  });

  test("a hedged request: the cancelled try and the winner are both client spans, each with its own traceparent upstream", async () => {
    let calls = 0;
    const parents: string[] = [];
    const answer = async (req: Request) => {
      parents.push(req.headers.get("traceparent") ?? "");
      if (++calls === 1) await stall(req, 5000); // the delay is the scenario: far slower than hedge_after, cut short when cancelled
      return new Response("done");
    };
    const a = startUpstream(answer);
    const b = startUpstream(answer);
    const p = await startProxy({
      routes: [{ name: "hedged", to: "pair", retry: { attempts: 2, hedge_after: "50ms" } }],
      clusters: { pair: { endpoints: [a.origin, b.origin] } },
      telemetry: { tracing: tracing() },
    });
    try {
      expect(await (await fetch(`${p.origin}/h`, { headers: { "x-request-id": "t-hedge" } })).text()).toBe("done");
      const server = await waitFor("hedge server span", () => collector.spans.find((s) => s.attributes["switchyard.request_id"] === "t-hedge"));
      const clients = await waitFor("two client spans", () => {
        const found = collector.spans.filter((s) => s.parentSpanId === server.spanId);
        return found.length === 2 ? found.sort((x, y) => Number(x.startNs - y.startNs)) : undefined;
      });
      const [slow, fast] = clients as [SeenSpan, SeenSpan];
      expect(parents).toEqual([`00-${server.traceId}-${slow.spanId}-01`, `00-${server.traceId}-${fast.spanId}-01`]);
      expect(slow.attributes["error.type"]).toBe("hedge_cancelled");
      expect(slow.status).toBe("unset");
      expect(fast.attributes).toMatchObject({ "http.response.status_code": 200, "http.request.resend_count": 1 });
      expect(server.attributes["switchyard.attempts"]).toBe(2);
      expect(Number(slow.endNs - slow.startNs) / 1e6).toBeLessThan(2500); // ended when cancelled, not after the 5 s stall
    } finally {
      await p.stop();
      a.stop(true);
      b.stop(true);
    }
  });

  test("failures: an unreachable upstream makes both spans errors with error.type; a 5xx answer marks the server span", async () => {
    const dead = await traced("/dead", "t-dead");
    expect(dead.res.status).toBe(502);
    expect(dead.server.status).toBe("error");
    expect(dead.server.attributes).toMatchObject({ "error.type": "upstream_connect_refused", "http.response.status_code": 502, "http.route": "dead" });
    expect(dead.clients[0]!.attributes).toMatchObject({ "error.type": "upstream_connect_refused", "server.port": 1 });
    expect(dead.clients[0]!.attributes["http.response.status_code"]).toBeUndefined();
    const boom = await traced("/boom", "t-boom");
    expect(boom.server.status).toBe("error");
    expect(boom.server.attributes["error.type"]).toBe("500");
    const methodOnly = await traced("/x", "t-custom", {}, 2, { method: "PROPFIND" });
    expect(methodOnly.server.name).toBe("HTTP main");
    expect(methodOnly.server.attributes).toMatchObject({ "http.request.method": "_OTHER", "http.request.method_original": "PROPFIND" });
  });

  test("no route: a server span alone, named by the method only; a 404 is not a server error", async () => {
    const p = await startProxy({ routes: [{ name: "only", match: { hosts: ["only.test"] }, to: "up" }], clusters: { up: { endpoints: [up.origin] } }, telemetry: { tracing: tracing() } });
    try {
      expect((await fetch(`${p.origin}/nowhere`, { headers: { "x-request-id": "t-404" } })).status).toBe(404);
      const server = await waitFor("404 span", () => collector.spans.find((s) => s.attributes["switchyard.request_id"] === "t-404"));
      expect(server.name).toBe("GET");
      expect(server.attributes["http.route"]).toBeUndefined();
      expect(server.attributes).toMatchObject({ "http.response.status_code": 404, "error.type": "no_route" });
      expect(server.status).toBe("unset");
      expect(collector.trace(server.traceId)).toHaveLength(1);
    } finally {
      await p.stop();
    }
  });

  test("a WebSocket session: one client span for the handshake (101), ended with the session", async () => {
    const ws = wsClient(`${proxy.origin.replace("http", "ws")}/ws`, { headers: { "x-request-id": "t-ws" } });
    await ws.opened;
    ws.ws.send("hi");
    expect((await ws.next("message")).data?.toString()).toBe("hi");
    await Bun.sleep(100); // the delay is the scenario: a session that lasts, so its spans must end with it
    ws.ws.close(1000);
    const spans = await waitFor("websocket spans", () => {
      const server = collector.spans.find((s) => s.attributes["switchyard.request_id"] === "t-ws");
      const client = server && collector.spans.find((s) => s.parentSpanId === server.spanId);
      return server && client ? { server, client } : undefined;
    });
    expect(spans.server.attributes["http.response.status_code"]).toBe(101);
    expect(spans.client.attributes["http.response.status_code"]).toBe(101);
    expect(Number(spans.server.endNs - spans.server.startNs) / 1e6).toBeGreaterThanOrEqual(90);
  });
});

describe("sampling", () => {
  test("parent-based: an incoming sampled=0 traceparent records nothing, and the upstream sees the same trace unsampled", async () => {
    const before = collector.spans.length;
    await (await fetch(`${proxy.origin}/unsampled`, { headers: { "x-request-id": "t-unsampled", traceparent: `00-${TRACE.replace("4bf9", "5bf9")}-${PARENT}-00` } })).text();
    // A sampled request after it: once its spans are in, the unsampled one would have been too.
    await traced("/after", "t-after");
    expect(collector.spans.slice(before).filter((s) => s.attributes["switchyard.request_id"] === "t-unsampled")).toEqual([]);
    expect(seen.get("t-unsampled")![0]!.traceparent).toBe(`00-${TRACE.replace("4bf9", "5bf9")}-${PARENT}-00`);
  });

  test("ratio for new traces: the share sampled is within bounds, and the flag sent upstream matches exactly what was recorded", async () => {
    const p = await startProxy({
      routes: [{ name: "main", to: "up" }],
      clusters: { up: { endpoints: [up.origin] } },
      telemetry: { tracing: tracing({ ratio: 0.3, max_queue_size: 4096 }) },
    });
    try {
      const n = 300;
      for (let i = 0; i < n; i++) await (await fetch(`${p.origin}/r`, { headers: { "x-request-id": `ratio-${i}` } })).text();
      const flags = new Map<string, string>(); // trace id → flag sent upstream
      for (let i = 0; i < n; i++) {
        const [, traceId, , flag] = TRACEPARENT.exec(seen.get(`ratio-${i}`)![0]!.traceparent)!;
        flags.set(traceId!, flag!);
      }
      const sampledUp = [...flags].filter(([, f]) => f === "01").map(([t]) => t);
      // Binomial(300, 0.3): mean 90, sd ≈ 7.9; these bounds are ±5 sd.
      expect(sampledUp.length).toBeGreaterThan(50);
      expect(sampledUp.length).toBeLessThan(130);
      await p.stop(); // flushes
      const recorded = new Set(collector.spans.filter((s) => s.kind === "server" && String(s.attributes["switchyard.request_id"]).startsWith("ratio-")).map((s) => s.traceId));
      expect([...recorded].sort()).toEqual(sampledUp.sort());
    } finally {
      await p.stop();
    }
  });

  test("enabled: false: no spans, and the caller's traceparent passes through unchanged", async () => {
    const p = await startProxy({
      routes: [{ name: "main", to: "up" }],
      clusters: { up: { endpoints: [up.origin] } },
      telemetry: { tracing: tracing({ enabled: false }) },
    });
    try {
      expect(p.running.state.runtime.current.tracer).toBeUndefined();
      const given = `00-${TRACE}-${PARENT}-01`;
      await (await fetch(`${p.origin}/off`, { headers: { "x-request-id": "t-off", traceparent: given } })).text();
      expect(seen.get("t-off")![0]!.traceparent).toBe(given);
    } finally {
      await p.stop();
    }
    expect(collector.spans.filter((s) => s.attributes["switchyard.request_id"] === "t-off")).toEqual([]);
  });
});

describe("export failures never reach the requests", () => {
  test("a collector answering 500: requests succeed at full speed, the spans are counted as failed", async () => {
    const broken = startCollector(() => new Response("nope", { status: 500 }));
    const p = await startProxy({
      routes: [{ name: "main", to: "up" }],
      clusters: { up: { endpoints: [up.origin] } },
      telemetry: { tracing: { endpoint: broken.url, flush_interval: "10ms" } },
    });
    const failedBefore = metrics.traceSpansFailed.value([]);
    try {
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        const res = await fetch(`${p.origin}/x`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe("ok");
        expect(performance.now() - started).toBeLessThan(500);
      }
      await waitFor("failed spans counted", () => metrics.traceSpansFailed.value([]) - failedBefore >= 40);
      // 500 is final (OTLP/HTTP): each batch was sent once, never retried.
      expect(broken.state.requests).toBeLessThanOrEqual(40);
      expect(broken.spans).toEqual([]);
    } finally {
      await p.stop();
      broken.stop();
    }
  });

  test("a collector that hangs: the queue stays bounded, the excess is dropped and counted, requests are not slowed", async () => {
    const hanging = startCollector(() => new Promise<Response>(() => {}));
    const p = await startProxy({
      routes: [{ name: "main", to: "up" }],
      clusters: { up: { endpoints: [up.origin] } },
      telemetry: { tracing: { endpoint: hanging.url, max_batch_size: 4, max_queue_size: 8, flush_interval: "10ms", export_timeout: "1s", retry: { attempts: 1 } } },
    });
    const droppedBefore = metrics.traceSpansDropped.value(["queue_full"]);
    let slowest = 0;
    try {
      for (let i = 0; i < 40; i++) {
        const started = performance.now();
        expect((await fetch(`${p.origin}/x`)).status).toBe(200);
        slowest = Math.max(slowest, performance.now() - started);
        expect(p.running.state.runtime.current.tracer!.exporter.queued).toBeLessThanOrEqual(8);
      }
      expect(slowest).toBeLessThan(500);
      // 80 spans; at most 4 in flight and 8 queued: the rest were dropped.
      expect(metrics.traceSpansDropped.value(["queue_full"]) - droppedBefore).toBeGreaterThanOrEqual(80 - 12);
    } finally {
      hanging.stop(); // the export in flight fails at once, and shutdown does not wait for it
      await p.stop();
    }
  }, 15_000);
});

describe("lifecycle", () => {
  test("shutdown flushes the spans still queued", async () => {
    const p = await startProxy({
      routes: [{ name: "main", to: "up" }],
      clusters: { up: { endpoints: [up.origin] } },
      telemetry: { tracing: tracing({ flush_interval: "1h" }) },
    });
    await (await fetch(`${p.origin}/last`, { headers: { "x-request-id": "t-last" } })).text();
    await Bun.sleep(50); // a negative check: with a 1 h interval nothing goes out meanwhile
    expect(collector.spans.filter((s) => s.attributes["switchyard.request_id"] === "t-last")).toEqual([]);
    await p.stop();
    expect(collector.spans.filter((s) => s.attributes["switchyard.request_id"] === "t-last")).toHaveLength(1);
  });

  test("a reload keeps the exporter when tracing is unchanged, and replaces it (sending the old queue) when it changes", async () => {
    // The listener trusts loopback: the test names its requests by X-Request-Id.
    const base: ConfigInput = { listeners: [{ address: "127.0.0.1", port: 0, trusted_proxies: ["127.0.0.1"] }], routes: [{ name: "main", to: "up" }], clusters: { up: { endpoints: [up.origin] } }, telemetry: { tracing: tracing({ flush_interval: "1h" }) } };
    const p = await startProxy(base);
    try {
      const first = p.running.state.runtime.current.tracer!.exporter;
      p.writeConfig({ ...base, routes: [{ name: "renamed", to: "up" }] });
      expect(await p.running.reload()).toBe(true);
      expect(p.running.state.runtime.current.tracer!.exporter).toBe(first);
      await (await fetch(`${p.origin}/before-change`, { headers: { "x-request-id": "t-reload" } })).text();
      p.writeConfig({ ...base, telemetry: { tracing: tracing({ service_name: "renamed-service" }) } });
      expect(await p.running.reload()).toBe(true);
      expect(p.running.state.runtime.current.tracer!.exporter).not.toBe(first);
      // The old exporter's queue went out when its last runtime let it go.
      const old = await waitFor("old queue sent", () => collector.spans.find((s) => s.attributes["switchyard.request_id"] === "t-reload"));
      expect(old.resource["service.name"]).toBe("switchyard");
      await (await fetch(`${p.origin}/after-change`, { headers: { "x-request-id": "t-reload-2" } })).text();
    } finally {
      await p.stop();
    }
    expect(collector.spans.find((s) => s.attributes["switchyard.request_id"] === "t-reload-2")?.resource["service.name"]).toBe("renamed-service");
  });
});
