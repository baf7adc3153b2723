/**
 * Transcoded routes against hostile upstreams: a raw Bun.serve (and a raw TCP socket) answering
 * with broken gRPC-Web frames, missing trailers, compression, wrong types and stalls. Every one is
 * a clean JSON error (502 with a code that names the fault, or the mapped status), never a crash.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GREETER, GREETER_DESCRIPTORS } from "../../helpers/greeter.ts";
import { startProxy, type TestProxy } from "../../helpers/proxy.ts";
import { rawUpstream, startUpstream, type Upstream } from "../../helpers/upstream.ts";

const te = new TextEncoder();
const GRPC_WEB = { "content-type": "application/grpc-web+proto" };

function frame(payload: Uint8Array | string, flags = 0, declared?: number): Uint8Array {
  const bytes = typeof payload === "string" ? te.encode(payload) : payload;
  const out = new Uint8Array(5 + bytes.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, declared ?? bytes.byteLength);
  out.set(bytes, 5);
  return out;
}
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
/** A GreetReply { message: "hi" }. */
const REPLY = new Uint8Array([0x0a, 0x02, 0x68, 0x69]);
const OK_TRAILER = frame("grpc-status: 0\r\n", 0x80);

/** gRPC-Web answers by scenario (the client's x-scenario header, which the proxy passes on). */
const GRPC_WEB_SCENARIOS: Record<string, () => Response> = {
  good: () => new Response(concat(frame(REPLY), OK_TRAILER), { headers: GRPC_WEB }),
  "frame-header-cut": () => new Response(new Uint8Array([0, 0, 0]), { headers: GRPC_WEB }),
  "frame-cut": () => new Response(concat(frame(REPLY, 0, 100)), { headers: GRPC_WEB }),
  compressed: () => new Response(concat(frame(REPLY, 0x01), OK_TRAILER), { headers: GRPC_WEB }),
  "no-trailers": () => new Response(frame(REPLY), { headers: GRPC_WEB }),
  "trailer-without-status": () => new Response(concat(frame(REPLY), frame("grpc-message: hm\r\n", 0x80)), { headers: GRPC_WEB }),
  "unknown-flags": () => new Response(concat(frame(REPLY, 0x02), OK_TRAILER), { headers: GRPC_WEB }),
  "data-after-trailers": () => new Response(concat(frame(REPLY), OK_TRAILER, frame(REPLY)), { headers: GRPC_WEB }),
  "two-messages": () => new Response(concat(frame(REPLY), frame(REPLY), OK_TRAILER), { headers: GRPC_WEB }),
  "no-message": () => new Response(OK_TRAILER, { headers: GRPC_WEB }),
  "status-garbage": () => new Response(concat(frame(REPLY), frame("grpc-status: abc\r\n", 0x80)), { headers: GRPC_WEB }),
  "status-99": () => new Response(frame("grpc-status: 99\r\ngrpc-message: odd\r\n", 0x80), { headers: GRPC_WEB }),
  "trailer-garbage-line": () => new Response(concat(frame(REPLY), frame("grpc-status 0\r\n", 0x80)), { headers: GRPC_WEB }),
  "error-after-message": () => new Response(concat(frame(REPLY), frame("grpc-status: 3\r\ngrpc-message: bad%20input%3A%20%C3%A9\r\n", 0x80)), { headers: GRPC_WEB }),
  "bad-escape": () => new Response(frame("grpc-status: 5\r\ngrpc-message: 100%zz\r\n", 0x80), { headers: GRPC_WEB }),
  "trailers-only-error": () => new Response(null, { headers: { ...GRPC_WEB, "grpc-status": "7", "grpc-message": "no%20way" } }),
  "trailers-only-ok": () => new Response(null, { headers: { ...GRPC_WEB, "grpc-status": "0" } }),
  "trailers-only-with-body": () => new Response(concat(frame(REPLY), OK_TRAILER), { headers: { ...GRPC_WEB, "grpc-status": "5" } }),
  html: () => new Response("<h1>hello</h1>", { headers: { "content-type": "text/html" } }),
  "grpc-web-text": () => new Response("AAAAAAQKAmhp", { headers: { "content-type": "application/grpc-web-text" } }),
  "http-503": () => new Response("busy", { status: 503 }),
  "http-404-with-status": () => new Response(null, { status: 404, headers: { "grpc-status": "12", "grpc-message": "nope" } }),
  "bad-proto": () => new Response(concat(frame(new Uint8Array([0xff, 0xff, 0xff])), OK_TRAILER), { headers: GRPC_WEB }),
  gzip: () => new Response(concat(frame(REPLY), OK_TRAILER), { headers: { ...GRPC_WEB, "content-encoding": "gzip" } }),
  huge: () => new Response(concat(frame(new Uint8Array(4096)), OK_TRAILER), { headers: GRPC_WEB }),
};

const CONNECT_SCENARIOS: Record<string, () => Response> = {
  good: () => new Response(REPLY, { headers: { "content-type": "application/proto" } }),
  html: () => new Response("<h1>hello</h1>", { headers: { "content-type": "text/html" } }),
  "http-503": () => new Response("busy", { status: 503 }),
  "unknown-code": () => Response.json({ code: "weird", message: "strange" }, { status: 400 }),
  "json-garbage": () => new Response("{", { status: 500, headers: { "content-type": "application/json" } }),
  "bad-proto": () => new Response(new Uint8Array([0xff, 0xff, 0xff]), { headers: { "content-type": "application/proto" } }),
  gzip: () => new Response(Bun.gzipSync(REPLY), { headers: { "content-type": "application/proto", "content-encoding": "gzip" } }),
  huge: () => new Response(new Uint8Array(4096), { headers: { "content-type": "application/proto" } }),
};

let hostile: Upstream;
let proxy: TestProxy;
let raw: ReturnType<typeof rawUpstream>;
let unavailable: Upstream;
const seenContentTypes: string[] = [];
/** Request bodies (hex) each upstream received, for the retry test. */
const bodies: { unavailable: string[]; hostile: string[] } = { unavailable: [], hostile: [] };

beforeAll(async () => {
  hostile = startUpstream(async (req) => {
    bodies.hostile.push(Buffer.from(await req.arrayBuffer()).toString("hex"));
    const scenario = req.headers.get("x-scenario") ?? "good";
    seenContentTypes.push(req.headers.get("content-type") ?? "");
    if (scenario === "stall") return new Promise<Response>(() => {}); // never answers
    const table = req.headers.get("content-type") === "application/proto" ? CONNECT_SCENARIOS : GRPC_WEB_SCENARIOS;
    return table[scenario]!();
  });
  // A Connect server that is always unavailable (a draining instance, say).
  unavailable = startUpstream(async (req) => {
    bodies.unavailable.push(Buffer.from(await req.arrayBuffer()).toString("hex"));
    return Response.json({ code: "unavailable", message: "draining" }, { status: 503 });
  });
  // Declares 100 bytes of reply, sends 10, and hangs up.
  raw = rawUpstream((socket) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-type: application/grpc-web+proto\r\ncontent-length: 100\r\n\r\n");
    socket.write(frame(REPLY));
    socket.end();
  });
  const transcode = (protocol: "connect" | "grpc-web") => ({
    descriptors: GREETER_DESCRIPTORS, service: GREETER, protocol, max_response: "1KiB",
    methods: [{ http: "POST /greet/{name}", rpc: "Greet" }],
  });
  proxy = await startProxy({
    clusters: { hostile: { endpoints: [hostile.origin] }, raw: { endpoints: [raw.origin] }, pair: { endpoints: [unavailable.origin, hostile.origin] } },
    routes: [
      { name: "web", match: { path: { prefix: "/web/" } }, to: "hostile", timeouts: { request: "300ms" }, grpc_transcode: { ...transcode("grpc-web"), methods: [{ http: "POST /web/greet/{name}", rpc: "Greet" }] } },
      { name: "connect", match: { path: { prefix: "/connect/" } }, to: "hostile", timeouts: { request: "300ms" }, grpc_transcode: { ...transcode("connect"), methods: [{ http: "POST /connect/greet/{name}", rpc: "Greet" }] } },
      {
        name: "retried", match: { path: { prefix: "/retried/" } }, to: "pair",
        retry: { attempts: 2, non_idempotent: true, backoff: { base: "1ms", max: "2ms" } },
        grpc_transcode: { ...transcode("connect"), methods: [{ http: "POST /retried/greet/{name}", rpc: "Greet" }] },
      },
      { name: "cut", match: { path: { prefix: "/cut/" } }, to: "raw", grpc_transcode: { ...transcode("grpc-web"), methods: [{ http: "POST /cut/greet/{name}", rpc: "Greet" }] } },
    ],
  });
});

afterAll(async () => {
  await proxy?.stop();
  hostile?.stop(true);
  unavailable?.stop(true);
  raw?.stop();
});

async function send(path: string, scenario: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(proxy.origin + path, { method: "POST", headers: { "x-scenario": scenario, "content-type": "application/json" }, body: "{}" });
  expect(res.headers.get("content-type")).toBe("application/json");
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("gRPC-Web upstream", () => {
  const cases: [string, number, string][] = [
    ["frame-header-cut", 502, "upstream_bad_frame"],
    ["frame-cut", 502, "upstream_bad_frame"],
    ["compressed", 502, "upstream_compressed"],
    ["no-trailers", 502, "upstream_missing_trailers"],
    ["trailer-without-status", 502, "upstream_missing_trailers"],
    ["unknown-flags", 502, "upstream_bad_frame"],
    ["data-after-trailers", 502, "upstream_bad_frame"],
    ["two-messages", 502, "upstream_bad_frame"],
    ["no-message", 502, "upstream_bad_frame"],
    ["status-garbage", 502, "upstream_bad_frame"],
    ["trailer-garbage-line", 502, "upstream_bad_frame"],
    ["trailers-only-ok", 502, "upstream_bad_frame"],
    ["trailers-only-with-body", 502, "upstream_bad_frame"],
    ["html", 502, "upstream_bad_response"],
    ["grpc-web-text", 502, "upstream_bad_response"],
    ["bad-proto", 502, "upstream_bad_response"],
    ["gzip", 502, "upstream_compressed"],
    ["huge", 502, "upstream_response_too_large"],
    ["stall", 504, "upstream_timeout"],
  ];
  test.each(cases)("%s → %d %s", async (scenario, status, error) => {
    const { status: got, body } = await send("/web/greet/x", scenario);
    expect({ got, error: body.error }).toEqual({ got: status, error });
    expect(typeof body.message).toBe("string");
    expect(body.grpc_status).toBeUndefined(); // a protocol fault, not a gRPC status
  });

  test("a well-formed reply still works (the harness is sound)", async () => {
    expect(await send("/web/greet/x", "good")).toEqual({ status: 200, body: { message: "hi" } });
    expect(seenContentTypes).toContain("application/grpc-web+proto");
  });

  const statuses: [string, number, string, number, string][] = [
    ["trailers-only-error", 403, "permission_denied", 7, "no way"],
    ["error-after-message", 400, "invalid_argument", 3, "bad input: é"],
    ["status-99", 500, "unknown", 2, "odd"],
    ["bad-escape", 404, "not_found", 5, "100%zz"],
    ["http-503", 503, "unavailable", 14, "the upstream answered HTTP 503 without a gRPC status"],
    ["http-404-with-status", 501, "unimplemented", 12, "nope"],
  ];
  test.each(statuses)("%s → %d %s (grpc_status %d)", async (scenario, status, error, code, message) => {
    const { status: got, body } = await send("/web/greet/x", scenario);
    expect(got).toBe(status);
    expect(body).toMatchObject({ error, grpc_status: code, message });
  });

  test("a reply cut off mid-body (the connection closes) is a 502", async () => {
    const { status, body } = await send("/cut/greet/x", "any");
    expect(status).toBe(502);
    expect(String(body.error)).toStartWith("upstream_");
  });
});

describe("Connect upstream", () => {
  const cases: [string, number, string, number | undefined][] = [
    ["html", 502, "upstream_bad_response", undefined],
    ["bad-proto", 502, "upstream_bad_response", undefined],
    ["gzip", 502, "upstream_compressed", undefined],
    ["huge", 502, "upstream_response_too_large", undefined],
    ["http-503", 503, "unavailable", 14],
    ["unknown-code", 500, "unknown", 2],
    ["json-garbage", 500, "unknown", 2],
    ["stall", 504, "upstream_timeout", undefined],
  ];
  test.each(cases)("%s → %d %s", async (scenario, status, error, code) => {
    const { status: got, body } = await send("/connect/greet/x", scenario);
    expect({ got, error: body.error, grpc_status: body.grpc_status }).toEqual({ got: status, error, grpc_status: code });
  });

  test("a well-formed reply still works", async () => {
    expect(await send("/connect/greet/x", "good")).toEqual({ status: 200, body: { message: "hi" } });
  });
});

test("the proxy is still serving after all of that", async () => {
  expect((await send("/web/greet/x", "good")).status).toBe(200);
});

test("an unavailable (503) reply is retried on the next endpoint with the same encoded message", async () => {
  bodies.unavailable.length = bodies.hostile.length = 0;
  const attempts: string[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${proxy.origin}/retried/greet/Zed`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"times": 3}' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ message: "hi" });
    attempts.push(res.headers.get("x-switchyard-attempts")!);
  }
  // Round robin: every other request meets the unavailable endpoint first and is retried.
  expect(attempts).toContain("2");
  expect(bodies.unavailable.length).toBeGreaterThan(0);
  // GreetRequest { name: "Zed", times: 3 }, the same bytes on both tries.
  const expected = "0a035a65641003";
  expect(new Set([...bodies.unavailable, ...bodies.hostile])).toEqual(new Set([expected]));
});
