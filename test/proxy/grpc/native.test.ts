/**
 * Native gRPC proxying with the real @grpc/grpc-js client and server: trailers and binary
 * metadata end to end, the four kinds of call, deadlines, cancellation both ways, upstream
 * failures (trailers-only errors, a dead endpoint, retries on UNAVAILABLE), proxy-side refusals
 * answered as gRPC statuses, per-method routes, metrics and the access log.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Echo, EchoClient, type EchoServer, grpc, drain, startEchoServer } from "../../helpers/grpc.ts";
import { startProxy, type TestProxy } from "../../helpers/proxy.ts";
import { waitFor } from "../../helpers/tmp.ts";
import { freePort } from "../../helpers/upstream.ts";

let server: EchoServer;
let other: EchoServer;
let proxy: TestProxy;
let client: EchoClient;
const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

beforeAll(async () => {
  server = await startEchoServer();
  other = await startEchoServer();
  const dead = freePort();
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http1", "http2"], trusted_proxies: ["127.0.0.1"] }],
    auth: { keys: { type: "api_key", header: "x-api-key", keys: [{ name: "k", sha256: sha(Buffer.from("grpc-secret-key-123")) }] } },
    rate_limits: { tiny: { rate: "1/min", burst: 1, key: "route" } },
    clusters: {
      echo: { endpoints: [server.origin] },
      other: { endpoints: [other.origin] },
      dead: { endpoints: [`http://127.0.0.1:${dead}`] },
      flaky: { endpoints: [server.origin] },
    },
    routes: [
      // Per-method routing: one method of the service to another cluster.
      { name: "bidi-other", match: { path: { exact: "/switchyard.test.grpc.Echo/Bidi" } }, to: "other" },
      { name: "auth", match: { headers: [{ name: "x-route", exact: "auth" }] }, to: "echo", filters: [{ type: "auth", providers: ["keys"] }] },
      { name: "limited", match: { headers: [{ name: "x-route", exact: "limited" }] }, to: "echo", filters: [{ type: "rate_limit", limits: ["tiny"] }] },
      { name: "dead", match: { headers: [{ name: "x-route", exact: "dead" }] }, to: "dead" },
      { name: "short", match: { headers: [{ name: "x-route", exact: "short" }] }, to: "echo", timeouts: { request: "300ms" } },
      { name: "retry", match: { headers: [{ name: "x-route", exact: "retry" }] }, to: "flaky", retry: { attempts: 3, retry_on: ["unavailable"] } },
      { name: "small", match: { headers: [{ name: "x-route", exact: "small" }] }, to: "echo", max_request_body: "10KiB" },
      { name: "echo", match: { path: { prefix: "/switchyard.test.grpc.Echo/" } }, to: "echo" },
    ],
  });
  client = new EchoClient(`127.0.0.1:${proxy.port}`);
});

afterAll(async () => {
  client.close();
  await proxy.stop();
  await server.stop();
  await other.stop();
});

const routed = (route: string, extra: Record<string, string | Buffer> = {}) => {
  const md = new grpc.Metadata();
  md.set("x-route", route);
  for (const [k, v] of Object.entries(extra)) md.set(k, v);
  return md;
};

describe("calls", () => {
  test("unary: metadata (text and -bin) both ways, trailers with -bin values, the log line", async () => {
    const md = routed("none", { "x-md": "v1", "x-md-bin": Buffer.from([0, 1, 254, 255]), "x-request-id": "grpc-unary" });
    const { reply, error, headers, trailers } = await client.unary({ text: "hello", pad: Buffer.from([9, 9]) }, md);
    expect(error).toBeUndefined();
    expect(reply).toMatchObject({ text: "hello", n: 5 });
    expect([...reply!.pad]).toEqual([9, 9]);
    expect(headers!.get("x-md")).toEqual(["v1"]);
    expect(headers!.get("x-md-bin")).toEqual([Buffer.from([0, 1, 254, 255])]);
    expect(trailers!.get("x-trailer")).toEqual(["yes"]);
    expect(trailers!.get("x-trailer-bin")).toEqual([Buffer.from([0, 1, 2, 255])]);
    expect(server.lastMetadata["x-forwarded-for"]).toBe("127.0.0.1");
    expect(await proxy.logOf("grpc-unary")).toMatchObject({ protocol: "2", status: 200, grpc_status: 0, route: "echo", path: "/switchyard.test.grpc.Echo/Unary" });
  });

  test("server streaming: 10,000 messages, in order, with the upstream's trailers", async () => {
    let next = 0;
    let inOrder = true;
    const result = await drain(client.serverStream({ count: 10_000, size: 100 }), (m, i) => {
      if (m.n !== i || m.n !== next++) inOrder = false;
    });
    expect(result.status.code).toBe(grpc.status.OK);
    expect(result.count).toBe(10_000);
    expect(inOrder).toBe(true);
    expect(result.status.metadata.get("x-written")).toEqual(["10000"]);
  });

  test("server streaming with a slow reader: the upstream is held back by flow control", async () => {
    const stream = client.serverStream({ count: 10_000, size: 16 * 1024 });
    let read = 0;
    const result = drain(stream, async () => {
      read++;
      if (read <= 20) await Bun.sleep(25);
    });
    // While 20 messages are read slowly (0.5 s), the server can only have written what the windows hold.
    await Bun.sleep(400);
    const writtenWhileSlow = server.written;
    expect(writtenWhileSlow).toBeLessThan(200); // 10,000 × 16 KiB would be 160 MiB unbounded
    expect((await result).count).toBe(10_000);
  });

  test("client streaming: 1,000 messages counted by the server", async () => {
    const reply = await new Promise<{ text: string; n: number }>((resolve, reject) => {
      const call = client.clientStream((e, r) => (e ? reject(e) : resolve(r!)));
      for (let i = 0; i < 1000; i++) call.write({ text: "ab", n: i, pad: Buffer.alloc(10) });
      call.end();
    });
    expect(reply).toMatchObject({ n: 1000, text: String(1000 * 12) });
  });

  test("bidi streaming, routed by method to another cluster", async () => {
    const call = client.bidi();
    const got: string[] = [];
    const ended = new Promise<void>((resolve) => call.on("status", () => resolve()));
    call.on("data", (m: { text: string }) => {
      got.push(m.text);
      if (got.length < 5) call.write({ text: `ping ${got.length}`, n: got.length, pad: Buffer.alloc(0) });
      else call.end();
    });
    call.write({ text: "ping 0", n: 0, pad: Buffer.alloc(0) });
    await ended;
    expect(got).toEqual(["echo ping 0", "echo ping 1", "echo ping 2", "echo ping 3", "echo ping 4"]);
    expect(other.calls).toContain("Bidi");
    expect(server.calls).not.toContain("Bidi");
  });
});

describe("deadlines and cancellation", () => {
  test("the client's deadline goes upstream as grpc-timeout; past it the call ends DEADLINE_EXCEEDED and the upstream is cancelled", async () => {
    const before = server.cancelled;
    const { error } = await client.unary({ text: "sleep:2000" }, routed("none"), { deadline: Date.now() + 300 });
    expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(server.lastDeadlineMs).toBeGreaterThan(0);
    expect(server.lastDeadlineMs).toBeLessThanOrEqual(300);
    await waitFor("upstream cancelled", () => server.cancelled > before || undefined);
  });

  test("the route's request timeout caps the call: DEADLINE_EXCEEDED from the proxy", async () => {
    const started = performance.now();
    const { error } = await client.unary({ text: "sleep:3000" }, routed("short", { "x-request-id": "grpc-short" }), { deadline: Date.now() + 10_000 });
    expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(error?.details).toBe("the route's request timeout expired");
    expect(performance.now() - started).toBeLessThan(1500);
    expect(server.lastDeadlineMs).toBeLessThanOrEqual(300); // the route's 300ms, not the client's 10s
    expect(await proxy.logOf("grpc-short")).toMatchObject({ grpc_status: 4, status: 504, error: "upstream_timeout" });
  });

  test("a client that cancels a server stream cancels it upstream", async () => {
    const stream = client.serverStream({ count: 100_000, size: 10, delay_ms: 5 });
    const result = drain(stream, (_, i) => {
      if (i === 10) stream.cancel();
    });
    expect((await result).status.code).toBe(grpc.status.CANCELLED);
    const at = server.written;
    await Bun.sleep(200);
    expect(server.written - at).toBeLessThan(5);
  });
});

describe("upstream failures", () => {
  test("a trailers-only error passes through with its status and message", async () => {
    const { error } = await client.unary({ text: "fail:7" });
    expect(error?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(error?.details).toBe("failed as asked (fail:7)");
  });

  test("an error after messages (INTERNAL mid-stream) reaches the client with the messages before it", async () => {
    const result = await drain(client.serverStream({ count: 100, size: 10, fail_after: 30 }));
    expect(result.count).toBe(30);
    expect(result.status.code).toBe(grpc.status.INTERNAL);
    expect(result.status.details).toBe("failed mid-stream as asked");
  });

  test("no upstream: UNAVAILABLE, logged as a proxy failure", async () => {
    const { error } = await client.unary({ text: "x" }, routed("dead", { "x-request-id": "grpc-dead" }));
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(error?.details).toBe("the upstream refused the connection");
    expect(await proxy.logOf("grpc-dead")).toMatchObject({ grpc_status: 14, error: "upstream_connect_refused", status: 502 });
  });

  test("retry_on: [unavailable] retries a trailers-only UNAVAILABLE", async () => {
    const { reply, error } = await client.unary({ text: `flaky:${crypto.randomUUID()}` }, routed("retry", { "x-request-id": "grpc-retry" }));
    expect(error).toBeUndefined();
    expect(reply?.text).toStartWith("flaky:");
    expect(await proxy.logOf("grpc-retry")).toMatchObject({ grpc_status: 0, attempts: 2 });
  });
});

describe("proxy-side refusals are gRPC statuses", () => {
  test("auth: UNAUTHENTICATED without a key, OK with it", async () => {
    const refused = await client.unary({ text: "x" }, routed("auth"));
    expect(refused.error?.code).toBe(grpc.status.UNAUTHENTICATED);
    const allowed = await client.unary({ text: "x" }, routed("auth", { "x-api-key": "grpc-secret-key-123" }));
    expect(allowed.error).toBeUndefined();
  });

  test("rate limit: RESOURCE_EXHAUSTED", async () => {
    expect((await client.unary({ text: "x" }, routed("limited"))).error).toBeUndefined();
    const limited = await client.unary({ text: "x" }, routed("limited"));
    expect(limited.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  test("a client stream over the route's max_request_body: RESOURCE_EXHAUSTED", async () => {
    const md = routed("small");
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      const d = Echo.service.ClientStream as grpc.MethodDefinition<object, object>;
      const call = client.client.makeClientStreamRequest<object, object>(d.path, d.requestSerialize, d.responseDeserialize, md, {}, (e) => resolve(e));
      for (let i = 0; i < 20; i++) call.write({ text: "x", n: i, pad: Buffer.alloc(1024) });
      call.end();
    });
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  test("no route: UNIMPLEMENTED", async () => {
    const stray = new grpc.Client(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    const code = await new Promise<number>((resolve) => {
      stray.makeUnaryRequest("/other.Service/Method", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e?.code ?? 0));
    });
    stray.close();
    expect(code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

test("metrics count calls by grpc-status", async () => {
  const { registry } = await import("../../../src/observe/metrics.ts");
  const text = registry.render();
  expect(text).toMatch(/switchyard_grpc_requests_total\{route="echo",cluster="echo",grpc_status="OK"\} \d+/);
  expect(text).toMatch(/switchyard_grpc_requests_total\{route="dead",cluster="dead",grpc_status="UNAVAILABLE"\} 1/);
});
