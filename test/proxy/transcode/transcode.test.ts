/** HTTP/JSON → unary RPC through the proxy, against a real Connect and gRPC-Web server (connect-node). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { GREETER, GREETER_DESCRIPTORS, type GreeterServer, startGreeter } from "../../helpers/greeter.ts";
import { startProxy, type TestProxy } from "../../helpers/proxy.ts";

let greeter: GreeterServer;
let proxy: TestProxy;

const PROTOCOLS = ["connect", "grpc-web"] as const;

beforeAll(async () => {
  greeter = await startGreeter();
  proxy = await startProxy({
    // Path variables may hold an encoded `/` (u%2F1): the guard must pass %2F on, not refuse it.
    listeners: [{ address: "127.0.0.1", port: 0, trusted_proxies: ["127.0.0.1"], path_normalization: { escaped_slashes: "keep" } }],
    clusters: { greeter: { endpoints: [greeter.origin] } },
    routes: PROTOCOLS.flatMap((protocol) => [
      {
        // The service's google.api.http annotations.
        name: `${protocol}-annotated`,
        match: { hosts: [`${protocol}.test`] },
        to: "greeter",
        timeouts: { request: "2s" },
        grpc_transcode: { descriptors: GREETER_DESCRIPTORS, service: GREETER, protocol },
      },
      {
        name: `${protocol}-explicit`,
        match: { hosts: [`${protocol}-explicit.test`] },
        to: "greeter",
        timeouts: { request: "400ms" },
        grpc_transcode: {
          descriptors: GREETER_DESCRIPTORS,
          service: GREETER,
          protocol,
          methods: [
            { http: "POST /v2/hello/{name}", rpc: "Greet", body: "options" },
            { http: "PUT /v2/hello/{name}", rpc: "Greet" },
            { http: "GET /v2/fail/{code}", rpc: "Fail" },
            { http: "POST /v2/sleep", rpc: "Sleep" },
          ],
          use_proto_names: true,
          emit_defaults: true,
          max_body: "1KiB",
        },
      },
    ]),
  });
});

afterAll(async () => {
  await proxy?.stop();
  await greeter?.stop();
});

function call(host: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(proxy.origin + path, {
    method,
    headers: { host, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
}

async function json(res: Response): Promise<Record<string, unknown>> {
  expect(res.headers.get("content-type")).toBe("application/json");
  return (await res.json()) as Record<string, unknown>;
}

describe.each(PROTOCOLS)("over %s", (protocol) => {
  const host = `${protocol}.test`;
  const explicit = `${protocol}-explicit.test`;

  test("a JSON POST becomes the RPC, and its reply JSON (path variable, body, int64 as string, enum names)", async () => {
    const res = await call(host, "POST", "/v1/greet/Ada", {
      times: 2, mood: "MOOD_HAPPY", tags: ["a", "b"], options: { language: "fr" }, bigNumber: "12345678901234567",
    }, { "x-custom": "kept", "x-request-id": "req-transcode-1" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("req-transcode-1");
    expect(res.headers.get("x-greeter")).toBe("yes"); // the upstream's own response metadata is passed on
    const body = await json(res);
    expect(body).toMatchObject({
      message: "Hello, Ada!", times: 2, mood: "MOOD_HAPPY", tags: ["a", "b"], displayLanguage: "fr", bigNumber: "12345678901234567",
    });
    const seen = body.seenHeaders as Record<string, string>;
    expect(seen["x-custom"]).toBe("kept");
    expect(seen["x-request-id"]).toBe("req-transcode-1");
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["content-type"]).toBe(protocol === "connect" ? "application/proto" : "application/grpc-web+proto");
    if (protocol === "connect") expect(seen["connect-protocol-version"]).toBe("1");
    else expect(seen["x-grpc-web"]).toBe("1");
    // Defaults are left out unless emit_defaults.
    expect("shouted" in body).toBe(false);
    expect(greeter.calls).toContain("Greet");
  });

  test("the GET binding fills the message from the path and the query (repeated, bool, numeric enum)", async () => {
    const res = await call(host, "GET", "/v1/greet/Bo%20b?times=3&shout=true&tags=x&tags=y&mood=2");
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ message: "HELLO, BO B!", times: 3, shouted: true, tags: ["x", "y"], mood: "MOOD_GRUMPY" });
  });

  test("path variables go into nested fields; a variable with a pattern keeps its segments", async () => {
    const res = await call(host, "GET", "/v1/users/u%2F1/regions/eu-west?verbose=true&fields=1&fields=2&filter=a%20b");
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ id: "u/1", region: "regions/eu-west", verbose: true, fields: [1, 2], filter: "a b" });
    // The pattern does not match another prefix.
    expect((await call(host, "GET", "/v1/users/u1/zones/eu")).status).toBe(404);
  });

  test("a path variable wins over the same field in the body", async () => {
    const res = await call(host, "POST", "/v1/greet/Path", { name: "Body" });
    expect((await json(res)).message).toBe("Hello, Path!");
  });

  test("explicit mappings: body into one field, proto field names and defaults in the reply", async () => {
    const res = await call(explicit, "POST", "/v2/hello/Cy", { language: "de" });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ message: "Hello, Cy!", display_language: "de", times: 0, shouted: false, big_number: "0", mood: "MOOD_UNSPECIFIED", tags: [] });
    // body defaults to "*" for PUT
    const put = await json(await call(explicit, "PUT", "/v2/hello/Di", { times: 4, big_number: "7" }));
    expect(put).toMatchObject({ message: "Hello, Di!", times: 4, big_number: "7" });
  });

  // gRPC code → HTTP status, each one (statuscodes.md; google.rpc.Code's HTTP mapping).
  const MAPPED: [number, string, number][] = [
    [1, "canceled", 499], [2, "unknown", 500], [3, "invalid_argument", 400], [4, "deadline_exceeded", 504],
    [5, "not_found", 404], [6, "already_exists", 409], [7, "permission_denied", 403], [8, "resource_exhausted", 429],
    [9, "failed_precondition", 400], [10, "aborted", 409], [11, "out_of_range", 400], [12, "unimplemented", 501],
    [13, "internal", 500], [14, "unavailable", 503], [15, "data_loss", 500], [16, "unauthenticated", 401],
  ];
  test.each(MAPPED)("gRPC status %d (%s) → HTTP %d with the JSON error body", async (code, name, status) => {
    const res = await call(explicit, "GET", `/v2/fail/${code}?message=${encodeURIComponent(`failed: ${name} é/%`)}`, undefined, { "x-request-id": `req-fail-${code}` });
    expect(res.status).toBe(status);
    expect(await json(res)).toEqual({ error: name, message: `failed: ${name} é/%`, request_id: `req-fail-${code}`, grpc_status: code });
  });

  test("the route's timeout is sent as the call's deadline (connect-timeout-ms / grpc-timeout)", async () => {
    const res = await call(explicit, "POST", "/v2/sleep", { ms: 1 });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.protocol).toBe(protocol);
    const timeout = Number(body.timeout_ms);
    expect(timeout).toBeGreaterThan(300);
    expect(timeout).toBeLessThanOrEqual(400);
  });

  test("a client's own deadline and protocol headers are not passed on", async () => {
    const res = await call(host, "POST", "/v1/greet/Eve", {}, { "grpc-timeout": "1m", "connect-timeout-ms": "1", "connect-protocol-version": "9" });
    expect(res.status).toBe(200);
    const seen = (await json(res)).seenHeaders as Record<string, string>;
    if (protocol === "connect") {
      expect(Number(seen["connect-timeout-ms"])).toBeGreaterThan(1000);
      expect(seen["connect-protocol-version"]).toBe("1");
      expect(seen["grpc-timeout"]).toBeUndefined();
    } else {
      expect(seen["grpc-timeout"]).toMatch(/^\d{4}m$/);
      expect(seen["connect-timeout-ms"]).toBeUndefined();
    }
  });

  test("a call slower than the route's timeout is a 504", async () => {
    const started = performance.now();
    const res = await call(explicit, "POST", "/v2/sleep", { ms: 3000 });
    expect(res.status).toBe(504);
    // Whichever deadline fires first (ours, or the server's from the header it was sent): both are 504.
    expect(["upstream_timeout", "deadline_exceeded"]).toContain((await json(res)).error as string);
    expect(performance.now() - started).toBeLessThan(1500);
  });

  test("a 64-bit integer sent as a JSON number keeps every digit (no rounding through a double)", async () => {
    for (const n of ["9007199254740993", "-9223372036854775807", "9223372036854775807"]) {
      const res = await call(host, "POST", "/v1/greet/x", `{"bigNumber": ${n}, "times": 1}`);
      expect(res.status).toBe(200);
      expect((await json(res)).bigNumber).toBe(n);
    }
    // Out of range stays an error; a big integer is no string for a string field.
    expect((await call(host, "POST", "/v1/greet/x", `{"bigNumber": 92233720368547758070}`)).status).toBe(400);
    expect((await call(host, "POST", "/v1/greet/x", `{"bigNumber": 1, "options": {"language": 12345678901234567890}}`)).status).toBe(400);
  });

  test("bad JSON, unknown fields, wrong types and non-objects are 400 with what was wrong", async () => {
    let res = await call(host, "POST", "/v1/greet/x", "{\"times\": 2,");
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: "invalid_json" });

    res = await call(host, "POST", "/v1/greet/x", { bogus: 1 }, { "x-request-id": "req-unknown" });
    expect(res.status).toBe(400);
    const unknown = await json(res);
    expect(unknown).toMatchObject({ error: "invalid_field", request_id: "req-unknown" });
    expect(unknown.message).toContain('key "bogus" is unknown');

    res = await call(host, "POST", "/v1/greet/x", { times: "many" });
    expect(res.status).toBe(400);
    expect((await json(res)).message).toContain("times");

    res = await call(host, "POST", "/v1/greet/x", [1, 2]);
    expect(res.status).toBe(400);
    expect((await json(res)).message).toContain("must be a JSON object");

    res = await call(host, "POST", "/v1/greet/x", new Uint8Array([0x7b, 0xff, 0x7d])); // not UTF-8
    expect(res.status).toBe(400);
    expect((await json(res)).error).toBe("invalid_json");
  });

  test("query parameters: unknown names, fields set by the path, non-repeated fields given twice", async () => {
    let res = await call(host, "GET", "/v1/greet/x?nope=1");
    expect(res.status).toBe(400);
    expect((await json(res)).message).toContain("query parameter nope");
    res = await call(host, "GET", "/v1/greet/x?name=y");
    expect((await json(res)).message).toContain("comes from the path");
    res = await call(host, "GET", "/v1/greet/x?times=1&times=2");
    expect((await json(res)).message).toContain("given 2 times");
    // With body "*", the body carries every field: a query parameter names none.
    res = await call(host, "POST", "/v1/greet/x?times=1", {});
    expect(res.status).toBe(400);
  });

  test("an oversized body is 413, declared or chunked; a non-JSON body is 415", async () => {
    const big = JSON.stringify({ language: "x".repeat(2000) });
    let res = await call(explicit, "POST", "/v2/hello/x", big);
    expect(res.status).toBe(413);
    expect((await json(res)).error).toBe("body_too_large");
    const chunks = [big.slice(0, 1000), big.slice(1000)];
    res = await fetch(`${proxy.origin}/v2/hello/x`, {
      method: "POST",
      headers: { host: explicit, "content-type": "application/json" },
      body: new ReadableStream({
        pull(c) {
          const next = chunks.shift();
          if (next === undefined) c.close();
          else c.enqueue(new TextEncoder().encode(next));
        },
      }),
    });
    expect(res.status).toBe(413);
    res = await call(host, "POST", "/v1/greet/x", "name=x", { "content-type": "application/x-www-form-urlencoded" });
    expect(res.status).toBe(415);
  });

  test("unmapped paths are 404, other methods on a mapped path 405 with Allow", async () => {
    let res = await call(host, "GET", "/v1/nothing");
    expect(res.status).toBe(404);
    expect((await json(res)).error).toBe("no_rpc");
    res = await call(host, "DELETE", "/v1/greet/x");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST, GET");
    // A malformed escape is refused by the request guard before any route (template.test.ts covers the transcoder's own check).
    res = await call(host, "GET", "/v1/greet/%zz");
    expect(res.status).toBe(400);
    expect(await json(res)).toMatchObject({ error: "invalid_path", message: "the path has a malformed percent-encoding" });
  });
});

test("the access log records the transcoded request like any other", async () => {
  const res = await call("connect.test", "POST", "/v1/greet/Log", {}, { "x-request-id": "req-transcode-log" });
  expect(res.status).toBe(200);
  const line = await proxy.logOf("req-transcode-log");
  expect(line).toMatchObject({ route: "connect-annotated", cluster: "greeter", status: 200, method: "POST", path: "/v1/greet/Log" });
});
