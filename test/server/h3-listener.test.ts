/** HTTP/3 listeners: QUIC beside TCP on the same port number, advertised by Alt-Svc on HTTP/1.1 and HTTP/2 answers. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { makePki, type TestPki } from "../helpers/certs.ts";
import { h2Fetch } from "../helpers/h2-client.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let pki: TestPki;
let upstream: Upstream;
let proxy: TestProxy;
const port: Record<string, number> = {};

beforeAll(async () => {
  pki = makePki();
  const cert = pki.issue("server", { subject: "/CN=api.test", dns: ["api.test"], ips: ["127.0.0.1"], usage: "server" });
  const tls = { certificates: [{ cert: cert.cert, key: cert.key }] };
  upstream = startUpstream(async (req) => new Response(`${req.method} ${new URL(req.url).pathname} ${await req.text()}`));
  proxy = await startProxy({
    listeners: [
      { name: "h1h3", address: "127.0.0.1", port: 0, protocols: ["http1", "http3"], tls, trusted_proxies: ["127.0.0.1"] },
      { name: "all", address: "127.0.0.1", port: 0, protocols: ["http1", "http2", "http3"], tls, trusted_proxies: ["127.0.0.1"] },
    ],
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [{ to: "up" }],
  });
  for (const l of proxy.running.proxies) port[l.name] = l.port;
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
  pki.cleanup();
});

const h3 = (p: number | undefined, path: string, init: RequestInit = {}) =>
  // Bun 1.4.5 fetch over HTTP/3 takes neither tls.ca nor tls.serverName (HTTP3Unsupported): no verification here.
  fetch(`https://127.0.0.1:${p}${path}`, { ...init, protocol: "http3", tls: { rejectUnauthorized: false } } as RequestInit);

for (const name of ["h1h3", "all"]) {
  test(`${name}: HTTP/1.1 answers advertise h3 on the same port; an HTTP/3 request is served and logged as protocol 3`, async () => {
    const h1 = await fetch(`https://127.0.0.1:${port[name]}/a`, { tls: { ca: pki.ca.certPem, serverName: "api.test" } } as RequestInit);
    expect(h1.headers.get("alt-svc")).toBe(`h3=":${port[name]}"; ma=86400`);
    await h1.text();
    const res = await h3(port[name], "/b", { method: "POST", body: "over quic", headers: { "x-request-id": `h3-${name}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("POST /b over quic");
    expect(await proxy.logOf(`h3-${name}`)).toMatchObject({ protocol: "3", listener: name, status: 200 });
  });
}

test("HTTP/2 answers advertise h3 too", async () => {
  const res = await h2Fetch(`https://127.0.0.1:${port.all}`, { ":path": "/c" }, undefined, { ca: pki.ca.certPem, servername: "api.test" });
  expect(res.status).toBe(200);
  expect(res.headers["alt-svc"]).toBe(`h3=":${port.all}"; ma=86400`);
});

test("after a certificate reload HTTP/3 still serves", async () => {
  await proxy.running.reload();
  expect((await h3(port.h1h3, "/d")).status).toBe(200);
});

test("a gRPC call over HTTP/3 gets UNIMPLEMENTED as a status it can read (no trailers over Bun's QUIC)", async () => {
  const res = await h3(port.h1h3, "/pkg.Svc/Method", { method: "POST", body: new Uint8Array(5), headers: { "content-type": "application/grpc" } });
  expect(res.status).toBe(200);
  expect(res.headers.get("grpc-status")).toBe("12");
  expect(res.headers.get("grpc-message")).toContain("use HTTP/2");
});
