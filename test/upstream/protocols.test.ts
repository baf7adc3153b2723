/**
 * Cluster protocols: HTTP/2 to https endpoints (fetch, ALPN h2) and to plain ones (h2c through the
 * pooled node:http2 client), HTTP/3 (fetch over QUIC), multiplexing measured as upstream
 * connections under 256 concurrent requests, config errors, and gRPC health checks.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import http2, { type Http2Server, type Http2SecureServer, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { ConfigError, validateConfig } from "../../src/config/load.ts";
import { closeAllSessions } from "../../src/upstream/h2-pool.ts";
import { makePki, type TestPki } from "../helpers/certs.ts";
import { h2Request, h2Session } from "../helpers/h2-client.ts";
import { type EchoServer, startEchoServer } from "../helpers/grpc.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";

let pki: TestPki;
/** node:http2 upstreams (they show each request's HTTP version and count their connections). */
interface H2Upstream {
  port: number;
  sessions: number;
  versions: string[];
  close(): void;
}

function serve(server: Http2Server | Http2SecureServer, state: H2Upstream): Promise<H2Upstream> {
  server.on("session", (s) => {
    state.sessions++;
    s.on("error", () => {});
  });
  server.on("stream", (stream: ServerHttp2Stream, headers) => {
    stream.on("error", () => {});
    state.versions.push("2");
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", async () => {
      const delay = Number(new URL(`http://x${headers[":path"]}`).searchParams.get("ms") ?? 0);
      if (delay > 0) await Bun.sleep(delay);
      if (stream.destroyed) return;
      stream.respond({ ":status": 200, "content-type": "text/plain", "x-path": String(headers[":path"]) });
      stream.end(`h2 ${headers[":method"]} ${Buffer.concat(chunks).length}`);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => {
    state.port = (server.address() as AddressInfo).port;
    state.close = () => server.close();
    resolve(state);
  }));
}

const fresh = (): H2Upstream => ({ port: 0, sessions: 0, versions: [], close() {} });
let h2c: H2Upstream;
let h2tls: H2Upstream;
let quic: ReturnType<typeof Bun.serve>;
let proxy: TestProxy;
let healthy: EchoServer;
let sick: EchoServer;

beforeAll(async () => {
  pki = makePki();
  const cert = pki.issue("up", { subject: "/CN=up.internal", dns: ["up.internal"], ips: ["127.0.0.1"], usage: "server" });
  h2c = await serve(http2.createServer({ settings: { maxConcurrentStreams: 1000 } }), fresh());
  h2tls = await serve(http2.createSecureServer({ cert: cert.certPem, key: cert.keyPem, settings: { maxConcurrentStreams: 1000 } }), fresh());
  quic = Bun.serve({ hostname: "127.0.0.1", port: 0, http3: true, http1: false, tls: { cert: cert.certPem, key: cert.keyPem }, fetch: async (req) => new Response(`h3 ${req.method} ${(await req.arrayBuffer()).byteLength}`) });
  healthy = await startEchoServer();
  sick = await startEchoServer();
  sick.health.set("", "NOT_SERVING");
  proxy = await startProxy({
    // Clients reach it over h2c: 256 client fetches plus 256 upstream fetches in one process would pass Bun's 256-fetch cap.
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http1", "http2"], http2: { max_concurrent_streams: 512 } }],
    clusters: {
      h2c: { endpoints: [`http://127.0.0.1:${h2c.port}`], protocol: "http2" },
      h2tls: { endpoints: [`https://127.0.0.1:${h2tls.port}`], protocol: "http2", tls: { ca: pki.ca.cert, server_name: "up.internal" } },
      h3: { endpoints: [`https://127.0.0.1:${quic.port}`], protocol: "http3", tls: { verify: false } },
      checked: {
        endpoints: [healthy.origin, sick.origin], protocol: "http2",
        health_check: { grpc: { service: "" }, interval: "100ms", jitter: "0", healthy_threshold: 1, unhealthy_threshold: 1 },
      },
    },
    routes: [
      { match: { path: { prefix: "/h2c" } }, to: "h2c" },
      { match: { path: { prefix: "/h2tls" } }, to: "h2tls" },
      { match: { path: { prefix: "/h3" } }, to: "h3" },
      { match: { path: { prefix: "/switchyard.test.grpc.Echo/" } }, to: "checked" },
    ],
  });
});

afterAll(async () => {
  await proxy.stop();
  closeAllSessions();
  h2c.close();
  h2tls.close();
  void quic.stop(true);
  await healthy.stop();
  await sick.stop();
  pki.cleanup();
});

describe("HTTP/2 and HTTP/3 to upstreams", () => {
  for (const name of ["h2c", "h2tls"] as const) {
    test(`${name}: requests and bodies over HTTP/2; 256 concurrent requests share one connection`, async () => {
      const up = name === "h2c" ? h2c : h2tls;
      const post = await fetch(`${proxy.origin}/${name}/post`, { method: "POST", body: "x".repeat(100_000) });
      expect(await post.text()).toBe("h2 POST 100000");
      const before = up.sessions;
      const session = await h2Session(proxy.origin);
      const answers = await Promise.all(Array.from({ length: 256 }, (_, i) => h2Request(session, { ":path": `/${name}/c?ms=100&i=${i}` })));
      session.close();
      expect(answers.every((a) => a.body.toString() === "h2 GET 0")).toBe(true);
      // Measured: one connection (at most one more, opened while the first was connecting).
      expect(up.sessions - before).toBeLessThanOrEqual(1);
    });
  }

  test("h3: requests over QUIC", async () => {
    const res = await fetch(`${proxy.origin}/h3/x`, { method: "POST", body: "quic" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("h3 POST 4");
  });
});

describe("config", () => {
  const problemsOf = (cluster: Record<string, unknown>): string[] => {
    try {
      validateConfig("t.yaml", { listeners: [{ port: 8080 }], routes: [{ to: "c" }], clusters: { c: cluster } }, {});
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    }
    return [];
  };

  test("http1 by default; http3 needs https endpoints and the system's roots", () => {
    const config = validateConfig("t.yaml", { listeners: [{ port: 8080 }], routes: [{ to: "c" }], clusters: { c: { endpoints: ["http://a:1"] } } }, {});
    expect(config.clusters.c!.protocol).toBe("http1");
    expect(problemsOf({ endpoints: ["http://a:1"], protocol: "http3" })).toEqual(["clusters.c.endpoints[0]: protocol http3 needs https:// endpoints (QUIC is always encrypted)"]);
    expect(problemsOf({ endpoints: ["https://a:1"], protocol: "http3", tls: { ca: pki.ca.cert } })).toEqual([
      "clusters.c.protocol: http3 upstreams are verified against the system's roots only (Bun's fetch over HTTP/3 takes no tls.ca, server_name or client certificate); use http2",
    ]);
    expect(problemsOf({ endpoints: ["http://a:1"], protocol: "http2" })).toEqual([]);
    expect(problemsOf({ endpoints: ["http://a:1"], health_check: { path: "/h", grpc: {} } })).toEqual(["clusters.c.health_check.path: give exactly one of path (an HTTP check) or grpc (grpc.health.v1.Health/Check)"]);
  });
});

test("gRPC health checks: an endpoint NOT_SERVING leaves the pool, SERVING again brings it back", async () => {
  const cluster = () => proxy.running.state.runtime.current.clusters.get("checked")!;
  await waitFor("the sick endpoint ejected", () => cluster().available().length === 1 || undefined);
  expect(cluster().available()[0]!.port).toBe(healthy.port);
  expect(sick.calls).toContain("Health/");
  sick.health.set("", "SERVING");
  await waitFor("the endpoint back", () => cluster().available().length === 2 || undefined);
});
