/** Every refusal of the request guard is a JSON error with the request id, in the access log and the error metric. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { metrics } from "../../src/observe/metrics.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let app: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  app = recordingUpstream("app");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, max_headers: 20, max_url_length: "64B", headers_with_underscores: "reject" }],
    routes: [{ name: "capped", to: "app", max_request_body: "16B" }],
    clusters: { app: { endpoints: [app.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  app.stop(true);
});

const REFUSALS: [string, string, number, string][] = [
  ["TRACE", "TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"],
  ["a long URL", `GET /${"u".repeat(100)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414, "uri_too_long"],
  ["many headers", `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 25 }, (_, i) => `X-${i}: v\r\n`).join("")}\r\n`, 431, "headers_too_large"],
  ["an underscore header", "GET / HTTP/1.1\r\nHost: x\r\nX_Y: 1\r\n\r\n", 400, "invalid_header"],
  ["an escaped slash", "GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_path"],
  ["Transfer-Encoding: ,chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 400, "invalid_framing"],
  ["Host with userinfo", "GET / HTTP/1.1\r\nHost: me@x\r\n\r\n", 400, "bad_request"],
  ["a body over the route's limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n12345678901234567", 413, "body_too_large"],
];

test("each is JSON with a request id, closes the connection, is logged and counted; nothing reaches the upstream", async () => {
  for (const [what, bytes, status, code] of REFUSALS) {
    const counted = metrics.errors.sum((labels) => labels[2] === code);
    const res = await rawRequest(proxy.port, bytes, { quietMs: 100 });
    expect({ what, status: res.status }).toEqual({ what, status });
    expect(res.headers["content-type"]).toBe("application/json");
    expect(res.headers.connection).toBe("close");
    const body = JSON.parse(res.body) as { error: string; message: string; request_id: string };
    expect(body.error).toBe(code);
    expect(body.message.length).toBeGreaterThan(10);
    expect(res.headers["x-request-id"]).toBe(body.request_id);
    expect(await proxy.logOf(body.request_id)).toMatchObject({ status, error: code, client_ip: "127.0.0.1" });
    expect(metrics.errors.sum((labels) => labels[2] === code)).toBe(counted + 1);
  }
  expect(app.seen).toHaveLength(0);
});
