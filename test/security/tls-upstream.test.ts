/**
 * Upstream TLS per cluster: CA, server name, client certificate (mTLS to the backend), and the
 * error a client gets when verification fails; also for health checks and WebSocket upstreams.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import { ConfigError, validateConfig } from "../../src/config/load.ts";
import { makePki, type TestCert, type TestPki } from "../helpers/certs.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";

let pki: TestPki;
let proxyClient: TestCert;
/** Wants a client certificate from the test CA; answers with what it saw. */
let mtlsBackend: Server<undefined>;
/** Signed by another CA. */
let strangerBackend: Server<undefined>;
let proxy: TestProxy;
let served = 0;

function tlsBackend(cert: TestCert, clientCa?: string): Server<undefined> {
  return Bun.serve({
    hostname: "127.0.0.1", port: 0,
    tls: { cert: cert.certPem, key: cert.keyPem, ...(clientCa && { ca: clientCa, requestCert: true, rejectUnauthorized: true }) },
    fetch(req, srv) {
      if (req.headers.get("upgrade") === "websocket") return srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 });
      served++;
      return new Response(`backend saw ${new URL(req.url).pathname}`);
    },
    websocket: { message: (ws: ServerWebSocket<undefined>, m) => void ws.send(`echo:${m}`) },
  });
}

const origin = (s: Server<undefined>) => `https://127.0.0.1:${s.port}`;

beforeAll(async () => {
  pki = makePki();
  const backendCert = pki.issue("backend", { subject: "/CN=backend.test", dns: ["backend.test"], ips: ["127.0.0.1"], usage: "server" });
  proxyClient = pki.issue("proxy-client", { subject: "/CN=switchyard", uris: ["spiffe://acme.test/switchyard"], usage: "client" });
  const otherCa = pki.newCa("other-ca", "/CN=Other CA");
  const strangerCert = pki.issue("stranger", { subject: "/CN=backend.test", dns: ["backend.test"], ips: ["127.0.0.1"], usage: "server", ca: otherCa });
  mtlsBackend = tlsBackend(backendCert, pki.ca.certPem);
  strangerBackend = tlsBackend(strangerCert);
  const client = { cert: proxyClient.cert, key: proxyClient.key };
  const healthCheck = { path: "/healthz", interval: "100ms", jitter: "0", unhealthy_threshold: 1, healthy_threshold: 1, timeout: "1s" };
  proxy = await startProxy({
    clusters: {
      mtls: { endpoints: [origin(mtlsBackend)], tls: { ca: pki.ca.cert, server_name: "backend.test", ...client } },
      "by-ip": { endpoints: [origin(mtlsBackend)], tls: { ca: pki.ca.cert, ...client } },
      "no-client-cert": { endpoints: [origin(mtlsBackend)], tls: { ca: pki.ca.cert, server_name: "backend.test" } },
      "other-ca": { endpoints: [origin(strangerBackend)], tls: { ca: pki.ca.cert, server_name: "backend.test" } },
      "wrong-name": { endpoints: [origin(mtlsBackend)], tls: { ca: pki.ca.cert, server_name: "elsewhere.test", ...client } },
      "system-roots": { endpoints: [origin(strangerBackend)] },
      "no-verify": { endpoints: [origin(strangerBackend)], tls: { verify: false } },
      "one-bad": { endpoints: [origin(strangerBackend), origin(mtlsBackend)], tls: { ca: pki.ca.cert, server_name: "backend.test", ...client } },
      "hc-good": { endpoints: [origin(mtlsBackend)], tls: { ca: pki.ca.cert, server_name: "backend.test", ...client }, health_check: healthCheck },
      "hc-bad": { endpoints: [origin(strangerBackend)], tls: { ca: pki.ca.cert, server_name: "backend.test" }, health_check: healthCheck, panic_threshold: 0 },
    },
    routes: [
      { match: { path: { prefix: "/retry" } }, to: "one-bad", retry: { attempts: 2 } },
      { match: { path: { prefix: "/ws" } }, to: "mtls", websocket: true },
      ...["mtls", "by-ip", "no-client-cert", "other-ca", "wrong-name", "system-roots", "no-verify", "hc-good", "hc-bad"].map((c) => ({
        match: { path: { prefix: `/${c}/` } }, to: c,
      })),
    ],
  });
});

afterAll(async () => {
  await proxy.stop();
  mtlsBackend.stop(true);
  strangerBackend.stop(true);
  pki.cleanup();
});

async function call(path: string): Promise<{ status: number; body: string; json?: { error: string; message: string } }> {
  const res = await fetch(`${proxy.origin}${path}`);
  const text = await res.text();
  return { status: res.status, body: text, json: res.headers.get("content-type") === "application/json" ? JSON.parse(text) : undefined };
}

describe("verification", () => {
  test("CA, server name and client certificate: the backend (which requires a client certificate) answers", async () => {
    expect(await call("/mtls/x")).toEqual({ status: 200, body: "backend saw /mtls/x", json: undefined });
  });

  test("without server_name the endpoint's host is verified (an IP SAN here)", async () => {
    expect((await call("/by-ip/x")).status).toBe(200);
  });

  test("a certificate from another CA: 502 upstream_tls_error naming the failure", async () => {
    const r = await call("/other-ca/x");
    expect(r.status).toBe(502);
    expect(r.json!.error).toBe("upstream_tls_error");
    expect(r.json!.message).toMatch(/^the upstream's TLS certificate failed verification: the certificate is not signed by a trusted CA \([A-Z_]+\)$/);
  });

  test("the system roots (no ca) do not trust a private CA either", async () => {
    const r = await call("/system-roots/x");
    expect(r.status).toBe(502);
    expect(r.json!.error).toBe("upstream_tls_error");
  });

  test("a server name the certificate does not hold: 502 upstream_tls_error", async () => {
    const r = await call("/wrong-name/x");
    expect(r.status).toBe(502);
    expect(r.json!).toMatchObject({
      error: "upstream_tls_error",
      message: "the upstream's TLS certificate failed verification: the certificate is not for the server name (ERR_TLS_CERT_ALTNAME_INVALID)",
    });
  });

  test("no client certificate for a backend that wants one: 502 upstream_tls_error (handshake refused)", async () => {
    const r = await call("/no-client-cert/x");
    expect(r.status).toBe(502);
    expect(r.json!.error).toBe("upstream_tls_error");
    expect(r.json!.message).toContain("the TLS handshake with the upstream failed");
  });

  test("verify: false accepts any certificate", async () => {
    expect((await call("/no-verify/x")).status).toBe(200);
  });

  test("a failed handshake is a connect failure: retried on another endpoint", async () => {
    for (let i = 0; i < 4; i++) expect((await call(`/retry/${i}`)).status).toBe(200);
  });
});

describe("health checks and WebSockets use the cluster's TLS settings", () => {
  test("the mTLS backend is healthy, the other-CA one is taken out", async () => {
    const clusters = proxy.running.state.runtime.current.clusters;
    await waitFor("health checks over TLS", () => {
      const good = clusters.get("hc-good")!.endpoints[0]!.health;
      const bad = clusters.get("hc-bad")!.endpoints[0]!.health;
      return good.checkPasses > 0 && bad.checkFailures > 0;
    });
    expect(clusters.get("hc-good")!.available()).toHaveLength(1);
    expect(clusters.get("hc-bad")!.available()).toHaveLength(0);
    expect((await call("/hc-bad/x")).json!.error).toBe("no_healthy_endpoint");
  });

  test("a WebSocket upstream over wss with the client certificate", async () => {
    const ws = new WebSocket(`${proxy.origin.replace("http", "ws")}/ws/chat`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("the proxied WebSocket did not open"));
    });
    const echoed = new Promise<string>((resolve) => (ws.onmessage = (e) => resolve(String(e.data))));
    ws.send("hi");
    expect(await echoed).toBe("echo:hi");
    ws.close();
  });
});

describe("config", () => {
  const base = { listeners: [{ port: 0 }], routes: [] };
  const problems = (clusters: unknown): string[] => {
    try {
      validateConfig("t.yaml", { ...base, clusters });
      return [];
    } catch (e) {
      return [...(e as ConfigError).problems];
    }
  };

  test("tls with a plain endpoint, a cert without key, or an unknown key is refused with its path", () => {
    expect(problems({ c: { endpoints: ["http://10.0.0.1:80"], tls: { verify: false } } })).toEqual(["clusters.c.endpoints[0]: the cluster has tls settings: use https:// for its endpoints"]);
    expect(problems({ c: { endpoints: ["https://10.0.0.1"], tls: { cert: "/x.pem" } } })).toEqual(["clusters.c.tls.key: cert and key go together (a client certificate needs its key)"]);
    expect(problems({ c: { endpoints: ["https://10.0.0.1"], tls: { verfy: false } } })).toEqual(['clusters.c.tls: unknown key "verfy"']);
    expect(problems({ c: { discovery: { type: "dns", host: "x.internal", port: 443 }, tls: {} } })).toEqual(["clusters.c.discovery.scheme: the cluster has tls settings: set scheme: https"]);
  });

  test("missing or wrong files are named with their config path", () => {
    const missing = pki.file("nope.pem");
    expect(problems({ c: { endpoints: ["https://10.0.0.1"], tls: { ca: missing } } })).toEqual([`clusters.c.tls.ca: cannot read ${missing}: ENOENT`]);
    expect(problems({ c: { endpoints: ["https://10.0.0.1"], tls: { ca: proxyClient.key } } })).toEqual([`clusters.c.tls.ca: ${proxyClient.key} holds no PEM certificate`]);
    expect(problems({ c: { endpoints: ["https://10.0.0.1"], tls: { cert: proxyClient.cert, key: pki.ca.key } } })).toEqual([
      `clusters.c.tls.key: ${pki.ca.key} is not the key of the certificate in ${proxyClient.cert}`,
    ]);
  });
});
