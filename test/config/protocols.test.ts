/** Listener protocols: defaults (HTTP/1.1 only, nginx-like HTTP/2 limits) and each mistake refused with its path. */
import { afterAll, expect, test } from "bun:test";
import { ConfigError, validateConfig } from "../../src/config/load.ts";
import { makePki } from "../helpers/certs.ts";

const pki = makePki();
const cert = pki.issue("server", { subject: "/CN=a.test", dns: ["a.test"], usage: "server" });
const tls = { certificates: [{ cert: cert.cert, key: cert.key }] };
afterAll(() => pki.cleanup());
const withListener = (listener: Record<string, unknown>) => ({ listeners: [{ port: 8080, ...listener }], routes: [{ to: "c" }], clusters: { c: { endpoints: ["http://127.0.0.1:9000"] } } });

function problemsOf(raw: unknown): string[] {
  try {
    validateConfig("test.yaml", raw, {});
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

test("defaults: HTTP/1.1 only; HTTP/2 limits of 128 streams, 1000 requests and 100 resets per 10s per connection, a 64 KiB stream window", () => {
  const config = validateConfig("t.yaml", withListener({}), {});
  expect(config.listeners[0]!.protocols).toEqual(["http1"]);
  expect(config.listeners[0]!.http2).toEqual({ max_concurrent_streams: 128, max_requests: 1000, max_resets: 100, reset_window: 10_000, stream_window: 65_535 });
});

test("each mistake is refused with its path", () => {
  expect(problemsOf(withListener({ protocols: ["http3"] }))).toEqual(["listeners[0].protocols: http3 needs tls (QUIC is always encrypted)"]);
  expect(problemsOf(withListener({ protocols: ["http1", "http2", "http1"] }))).toEqual(["listeners[0].protocols[2]: http1 is listed twice"]);
  expect(problemsOf(withListener({ protocols: [] }))).toHaveLength(1);
  expect(problemsOf(withListener({ protocols: ["h2"] }))[0]).toStartWith("listeners[0].protocols[0]:");
  expect(problemsOf(withListener({ protocols: ["http1", "http3"], tls: { ...tls, client_auth: { mode: "require", ca: pki.ca.cert } } }))).toEqual([
    "listeners[0].protocols: http3 is not available with tls.client_auth (the client certificate cannot be read over QUIC); use http1 and http2",
  ]);
  expect(problemsOf(withListener({ mode: "egress", egress: { allow: [{ host: "example.com" }] }, protocols: ["http1", "http2"] }))).toContain("listeners[0].protocols: an egress listener speaks http1 only");
  expect(problemsOf(withListener({ http2: { max_concurrent_streams: 0, stream_window: 1000, reset_window: "0" } }))).toHaveLength(3);
});

test("valid combinations pass", () => {
  expect(problemsOf(withListener({ protocols: ["http2"] }))).toEqual([]);
  expect(problemsOf(withListener({ protocols: ["http1", "http2", "http3"], tls }))).toEqual([]);
  expect(problemsOf(withListener({ protocols: ["http3"], tls }))).toEqual([]);
});
