/**
 * HTTP/2 listeners: h2c by prior knowledge and h2 by ALPN beside HTTP/1.1 on one port, and the
 * proxy's features over HTTP/2 as over HTTP/1.1 (routing, filters, cache, retries, streaming
 * both ways, access log, metrics, mTLS identity, reload, drain with GOAWAY, TLS rotation).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { makePki, type TestCert, type TestPki } from "../helpers/certs.ts";
import { curl, h2Fetch, h2Request, h2Session } from "../helpers/h2-client.ts";
import { FrameType, headersFrame, rawH2 } from "../helpers/h2-raw.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const MiB = 1024 * 1024;
let pki: TestPki;
let server: TestCert;
let client: TestCert;
let upstream: Upstream;
let proxy: TestProxy;
let flaky = 0;
const live = { cert: "", key: "" };
const dir = tempDir();
/** Ports by listener name. */
const port: Record<string, number> = {};

/** 4 MiB of varied bytes. */
const big = new Uint8Array(4 * MiB).map((_, i) => (i * 31 + (i >> 10)) & 255);
const sha = (b: Uint8Array | ArrayBuffer) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

beforeAll(async () => {
  pki = makePki();
  server = pki.issue("server", { subject: "/CN=api.test", dns: ["api.test"], ips: ["127.0.0.1"], usage: "server" });
  client = pki.issue("web", { subject: "/O=Acme/CN=web", uris: ["spiffe://acme.test/web"], usage: "client" });
  live.cert = pki.file("live.pem");
  live.key = pki.file("live.key");
  copyFileSync(server.cert, live.cert);
  copyFileSync(server.key, live.key);
  upstream = startUpstream(async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/upload") return new Response(sha(await req.arrayBuffer()));
    if (url.pathname === "/download") return new Response(big);
    if (url.pathname === "/slow") {
      await Bun.sleep(Number(url.searchParams.get("ms") ?? 300));
      return new Response("slow done");
    }
    if (url.pathname === "/flaky") return ++flaky % 2 === 1 ? new Response("busy", { status: 503 }) : new Response("second try");
    if (url.pathname === "/cached") return new Response(`fresh ${crypto.randomUUID()}`, { headers: { "cache-control": "max-age=60" } });
    return Response.json({ method: req.method, path: url.pathname, query: url.search, headers: Object.fromEntries(req.headers), body: await req.text() });
  });
  proxy = await startProxy({
    listeners: [
      { name: "both", address: "127.0.0.1", port: 0, protocols: ["http1", "http2"], trusted_proxies: ["127.0.0.1"], health_checks: true },
      { name: "h2c-only", address: "127.0.0.1", port: 0, protocols: ["http2"] },
      { name: "tls", address: "127.0.0.1", port: 0, protocols: ["http1", "http2"], tls: { certificates: [{ cert: live.cert, key: live.key }] } },
      {
        name: "mtls", address: "127.0.0.1", port: 0, protocols: ["http1", "http2"],
        tls: { certificates: [{ cert: server.cert, key: server.key }], client_auth: { mode: "require", ca: pki.ca.cert, forward_client_cert: "set" } },
      },
    ],
    auth: { keys: { type: "api_key", header: "x-api-key", keys: [{ name: "k1", sha256: sha(Buffer.from("secret-key-0123456789")) }] } },
    caches: { main: { path: dir.file("cache.db") } },
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [
      { name: "auth", match: { path: { prefix: "/private" } }, to: "up", filters: [{ type: "auth", providers: ["keys"] }] },
      { name: "cached", match: { path: { exact: "/cached" } }, to: "up", cache: { name: "main" } },
      { name: "retried", match: { path: { exact: "/flaky" } }, to: "up", retry: { attempts: 2, retry_on: ["5xx"] } },
      { name: "only-api", match: { hosts: ["api.test"], path: { prefix: "/" } }, to: "up", headers: { request: { set: { "x-route": "only-api" } } } },
      { name: "all", to: "up", timeouts: { request: "5s" } },
    ],
  });
  for (const l of proxy.running.proxies) port[l.name] = l.port;
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
  pki.cleanup();
  dir.cleanup();
});

describe("one port, two protocols", () => {
  test("h2c by prior knowledge and HTTP/1.1 on the same plain port (curl)", async () => {
    const h2 = await curl(`http://127.0.0.1:${port.both}/hello?x=1`, ["--http2-prior-knowledge"]);
    expect(h2.version).toBe("HTTP/2");
    expect(h2.status).toBe(200);
    expect(JSON.parse(h2.body)).toMatchObject({ method: "GET", path: "/hello", query: "?x=1" });
    const h1 = await curl(`http://127.0.0.1:${port.both}/hello`, ["--http1.1"]);
    expect(h1.version).toBe("HTTP/1.1");
    expect(h1.status).toBe(200);
  });

  test("an h2c-only listener refuses HTTP/1.1 and serves h2c", async () => {
    expect((await curl(`http://127.0.0.1:${port["h2c-only"]}/x`, ["--http2-prior-knowledge"])).status).toBe(200);
    const h1 = await curl(`http://127.0.0.1:${port["h2c-only"]}/x`, ["--http1.1"]);
    expect(h1.status).toBe(0); // the engine answers a request without the preface with GOAWAY and closes
  });

  test("TLS: h2 by ALPN, HTTP/1.1 for clients that do not offer h2; X-Forwarded-Proto https", async () => {
    const h2 = await curl(`https://api.test:${port.tls}/who`, ["--http2", "--cacert", pki.ca.cert, "--resolve", `api.test:${port.tls}:127.0.0.1`]);
    expect(h2.version).toBe("HTTP/2");
    const seen = JSON.parse(h2.body) as { headers: Record<string, string> };
    expect(seen.headers["x-forwarded-proto"]).toBe("https");
    expect(seen.headers["x-route"]).toBe("only-api"); // routed by :authority
    const h1 = await curl(`https://api.test:${port.tls}/who`, ["--http1.1", "--cacert", pki.ca.cert, "--resolve", `api.test:${port.tls}:127.0.0.1`]);
    expect(h1.version).toBe("HTTP/1.1");
  });

  test("health checks on the listener answer over h2 too", async () => {
    const res = await h2Fetch(`http://127.0.0.1:${port.both}`, { ":path": "/healthz" });
    expect(res.status).toBe(200);
  });
});

describe("features over HTTP/2", () => {
  test("a 4 MiB upload and a 4 MiB download stream through intact", async () => {
    const session = await h2Session(`http://127.0.0.1:${port.both}`);
    const up = await h2Request(session, { ":path": "/upload", ":method": "POST", "content-length": String(big.byteLength) }, big);
    expect(up.status).toBe(200);
    expect(up.body.toString()).toBe(sha(big));
    const down = await h2Request(session, { ":path": "/download" });
    expect(down.status).toBe(200);
    expect(sha(down.body)).toBe(sha(big));
    session.close();
  });

  test("filters answer over h2 (auth 401, then 200 with the key)", async () => {
    const session = await h2Session(`http://127.0.0.1:${port.both}`);
    const refused = await h2Request(session, { ":path": "/private/x" });
    expect(refused.status).toBe(401);
    const allowed = await h2Request(session, { ":path": "/private/x", "x-api-key": "secret-key-0123456789" });
    expect(allowed.status).toBe(200);
    session.close();
  });

  test("the cache serves an h2 client what an HTTP/1.1 client stored", async () => {
    const first = await curl(`http://127.0.0.1:${port.both}/cached`, ["--http1.1"]);
    const second = await h2Fetch(`http://127.0.0.1:${port.both}`, { ":path": "/cached" });
    expect(second.body.toString()).toBe(first.body);
    expect(second.headers["x-cache"]).toBe("HIT");
  });

  test("retries: a 503 answer is retried for an h2 request", async () => {
    flaky = 0;
    const res = await h2Fetch(`http://127.0.0.1:${port.both}`, { ":path": "/flaky" });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("second try");
    expect(res.headers["x-switchyard-attempts"]).toBe("2");
  });

  test("access log says protocol 2 (1.1 for HTTP/1.1); the metric counts by protocol", async () => {
    await h2Fetch(`http://127.0.0.1:${port.both}`, { ":path": "/logged", "x-request-id": "h2-logged" });
    await fetch(`http://127.0.0.1:${port.both}/logged`, { headers: { "x-request-id": "h1-logged" } });
    expect(await proxy.logOf("h2-logged")).toMatchObject({ protocol: "2", listener: "both", status: 200 });
    expect(await proxy.logOf("h1-logged")).toMatchObject({ protocol: "1.1", listener: "both", status: 200 });
    const { registry } = await import("../../src/observe/metrics.ts");
    const text = registry.render();
    expect(text).toMatch(/switchyard_requests_by_protocol_total\{listener="both",protocol="2"\} \d+/);
    expect(text).toMatch(/switchyard_requests_by_protocol_total\{listener="both",protocol="1.1"\} \d+/);
  });

  test("many concurrent streams on one connection all answer", async () => {
    const session = await h2Session(`http://127.0.0.1:${port.both}`);
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => h2Request(session, { ":path": `/slow?ms=50&i=${i}` })));
    expect(answers.every((a) => a.status === 200 && a.body.toString() === "slow done")).toBe(true);
    session.close();
  });

  test("a client reset cancels the upstream request and is logged as client_aborted", async () => {
    const session = await h2Session(`http://127.0.0.1:${port.both}`);
    const stream = session.request({ ":path": "/slow?ms=2000", "x-request-id": "h2-reset" });
    stream.on("error", () => {});
    await Bun.sleep(100);
    stream.close(8);
    expect(await proxy.logOf("h2-reset")).toMatchObject({ protocol: "2", error: "client_aborted", status: 499 });
    session.close();
  });

  test("mTLS over h2: the verified identity goes upstream as x-forwarded-client-cert", async () => {
    const res = await h2Fetch(`https://127.0.0.1:${port.mtls}`, { ":path": "/who", ":authority": "api.test" }, undefined, {
      ca: pki.ca.certPem, cert: client.certPem, key: client.keyPem, servername: "api.test",
    });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body.toString()) as { headers: Record<string, string> };
    expect(seen.headers["x-forwarded-client-cert"]).toContain("URI=spiffe://acme.test/web");
  });

  test("WebSocket over h2 (RFC 8441 extended CONNECT) is refused: the listener does not offer it", async () => {
    const c = await rawH2(port.both!);
    const settings = await c.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & 1) === 0);
    // SETTINGS_ENABLE_CONNECT_PROTOCOL (0x8) is never 1.
    const values = settings === undefined ? [] : Array.from({ length: settings.payload.length / 6 }, (_, i) => ({ id: settings.payload.readUInt16BE(i * 6), value: settings.payload.readUInt32BE(i * 6 + 2) }));
    expect(values.some((s) => s.id === 8 && s.value === 1)).toBe(false);
    c.send(headersFrame(1, [[":method", "CONNECT"], [":protocol", "websocket"], [":scheme", "http"], [":authority", "x"], [":path", "/ws"]]));
    const answer = await c.waitFor((f) => f.stream === 1 && (f.type === FrameType.RST_STREAM || f.type === FrameType.HEADERS));
    expect(answer?.type).toBe(FrameType.RST_STREAM);
    c.close();
  });
});

describe("lifecycle", () => {
  test("a reload's routes apply to the next h2 request on an open connection", async () => {
    const session = await h2Session(`http://127.0.0.1:${port.both}`);
    expect((await h2Request(session, { ":path": "/reloaded" })).status).toBe(200);
    const config = JSON.parse(await Bun.file(proxy.configFile).text()) as { routes: { name: string }[] };
    config.routes = config.routes.filter((r) => r.name !== "all");
    proxy.writeConfig(config as never);
    await proxy.running.reload();
    expect((await h2Request(session, { ":path": "/reloaded" })).status).toBe(404);
    proxy.writeConfig(JSON.parse(await Bun.file(proxy.configFile).text().then(() => JSON.stringify({ ...config, routes: [...config.routes, { name: "all", to: "up" }] }))));
    await proxy.running.reload();
    expect((await h2Request(session, { ":path": "/reloaded" })).status).toBe(200);
    session.close();
  });

  test("TLS rotation: new h2 connections get the new certificate, open ones go on", async () => {
    const rotated = pki.issue("rotated", { subject: "/CN=api.test/O=Rotated", dns: ["api.test"], ips: ["127.0.0.1"], usage: "server" });
    const open = await h2Session(`https://127.0.0.1:${port.tls}`, { ca: pki.ca.certPem, servername: "api.test" });
    const subject = async () => {
      const s = await h2Session(`https://127.0.0.1:${port.tls}`, { ca: pki.ca.certPem, servername: "api.test" });
      const cert = (s.socket as import("node:tls").TLSSocket).getPeerCertificate();
      s.close();
      return cert.subject.O ?? "";
    };
    expect(await subject()).toBe("");
    copyFileSync(rotated.cert, live.cert);
    copyFileSync(rotated.key, live.key);
    await proxy.running.reload();
    expect(await subject()).toBe("Rotated");
    expect((await h2Request(open, { ":path": "/still" })).status).toBe(200);
    open.close();
  });
});
