/**
 * mTLS listeners: client certificates required or requested, the verified identity on every
 * request of a connection (x-forwarded-client-cert), never one a client wrote itself, and the
 * front's behaviour with hostile peers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ServerWebSocket } from "bun";
import { copyFileSync, writeFileSync } from "node:fs";
import { makePki, type TestCert, type TestPki } from "../helpers/certs.ts";
import { spawnProxy, spawnWorkers, writeTempConfig } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { tlsConnect } from "../helpers/tls-client.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";
import { FrontConnections, startMtlsFront } from "../../src/server/mtls-front.ts";
import { ClientAuthSchema } from "../../src/security/tls-schema.ts";

let pki: TestPki;
let server: TestCert;
let web: TestCert;
let billing: TestCert;
let stranger: TestCert;
let serverAsClient: TestCert;
/** Echoes what it received of the headers that matter here. */
let upstream: Upstream;
let proxy: TestProxy;
const wsHandshakes: Record<string, string>[] = [];
let live: { cert: string; key: string };

const XFCC = "x-forwarded-client-cert";
/** 8 MiB of varied bytes: large enough to fill socket buffers both ways through the front. */
const bigBody = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 31 + (i >> 12)) & 255);

function get(path: string, extra = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: api.test\r\n${extra}\r\n`;
}

beforeAll(async () => {
  pki = makePki();
  server = pki.issue("server", { subject: "/CN=api.test", dns: ["api.test"], usage: "server" });
  web = pki.issue("web", { subject: "/O=Acme/CN=web", dns: ["web.acme.test"], uris: ["spiffe://acme.test/ns/default/sa/web"], usage: "client" });
  billing = pki.issue("billing", { subject: "/O=Acme/CN=billing", uris: ["spiffe://acme.test/ns/pay/sa/billing"], usage: "client" });
  const otherCa = pki.newCa("other-ca", "/CN=Other CA");
  stranger = pki.issue("stranger", { subject: "/CN=stranger", usage: "client", ca: otherCa });
  serverAsClient = pki.issue("server2", { subject: "/CN=not-a-client", dns: ["x.test"], usage: "server" });
  live = { cert: pki.file("live.pem"), key: pki.file("live.key") };
  copyFileSync(server.cert, live.cert);
  copyFileSync(server.key, live.key);
  upstream = startUpstream(
    (req, srv) => {
      if (req.headers.get("upgrade") === "websocket") {
        wsHandshakes.push(Object.fromEntries(req.headers));
        return srv.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 });
      }
      const path = new URL(req.url).pathname;
      if (path === "/upload") return req.arrayBuffer().then((b) => new Response(new Bun.CryptoHasher("sha256").update(b).digest("hex")));
      if (path === "/download") return new Response(bigBody);
      return Response.json({ xfcc: req.headers.get(XFCC), xff: req.headers.get("x-forwarded-for"), proto: req.headers.get("x-forwarded-proto") });
    },
    { message: (ws: ServerWebSocket<unknown>, m: string | Buffer) => void ws.send(m) },
  );
  proxy = await startProxy({
    listeners: [
      {
        name: "mtls", address: "127.0.0.1", port: 0, idle_timeout: "2s",
        tls: { certificates: [{ cert: live.cert, key: live.key }], client_auth: { mode: "require", ca: pki.ca.cert, forward_client_cert: "set" } },
      },
      {
        name: "optional", address: "127.0.0.1", port: 0,
        tls: { certificates: [{ cert: server.cert, key: server.key }], client_auth: { mode: "request", ca: pki.ca.cert, max_pending_handshakes: 3 } },
      },
      { name: "plain", address: "127.0.0.1", port: 0 },
    ],
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [
      {
        match: { path: { prefix: "/pay" } }, to: "up",
        filters: [{ type: "authorize", rules: [{ allow: true, when: { client_cert: { uri: ["spiffe://acme.test/ns/pay/*"], subject: ["CN=billing,*"] } } }] }],
      },
      { to: "up", websocket: true },
    ],
  });
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
  pki.cleanup();
});

const port = (i: number) => proxy.running.proxies[i]!.port;
const connectAs = (cert: TestCert | undefined, listener = 0, localAddress?: string) =>
  tlsConnect({ port: port(listener), servername: "api.test", ca: pki.ca.certPem, cert: cert?.certPem, key: cert?.keyPem, localAddress });
const body = (r: { body: string }) => JSON.parse(r.body) as { xfcc: string | null; xff: string; proto: string };

describe("require", () => {
  test("the verified identity reaches the upstream as x-forwarded-client-cert (Envoy's format)", async () => {
    const conn = await connectAs(web);
    const seen = body(await conn.request(get("/")));
    conn.close();
    expect(seen.xfcc).toMatch(/^Hash=[0-9a-f]{64};Subject="CN=web,O=Acme";URI=spiffe:\/\/acme\.test\/ns\/default\/sa\/web;DNS=web\.acme\.test$/);
    expect(seen.xfcc).toContain(`Hash=${new Bun.CryptoHasher("sha256").update(new (await import("node:crypto")).X509Certificate(web.certPem).raw).digest("hex")}`);
    expect(seen.proto).toBe("https");
  });

  test("every request of a keep-alive connection carries it; a client's own header is replaced, in any case and repeated", async () => {
    const conn = await connectAs(billing);
    for (let i = 0; i < 5; i++) {
      const forged = i % 2 === 0 ? `${XFCC}: Hash=00;Subject="CN=admin"\r\nX-Forwarded-Client-Cert: URI=spiffe://acme.test/admin\r\n` : "";
      const seen = body(await conn.request(get(`/k${i}`, forged)));
      expect(seen.xfcc).toMatch(/^Hash=[0-9a-f]{64};Subject="CN=billing,O=Acme";URI=spiffe:\/\/acme\.test\/ns\/pay\/sa\/billing$/);
    }
    conn.close();
  });

  test("interleaved connections of two clients each get their own identity", async () => {
    const [one, two] = await Promise.all([connectAs(web), connectAs(billing)]);
    for (let i = 0; i < 4; i++) {
      const [r1, r2] = await Promise.all([one.request(get(`/a${i}`)), two.request(get(`/b${i}`))]);
      expect(body(r1).xfcc).toContain('Subject="CN=web,O=Acme"');
      expect(body(r2).xfcc).toContain('Subject="CN=billing,O=Acme"');
    }
    one.close();
    two.close();
  });

  test("3 certificates × 30 concurrent keep-alive connections: every request sees its own connection's identity", async () => {
    const third = pki.issue("third", { subject: "/O=Acme/CN=third", usage: "client" });
    const certs = [web, billing, third];
    const names = ["web", "billing", "third"];
    const conns = await Promise.all(Array.from({ length: 90 }, (_, i) => connectAs(certs[i % 3])));
    const wrong: string[] = [];
    for (let round = 0; round < 4; round++) {
      const replies = await Promise.all(conns.map((c, i) => c.request(get(`/r${round}-${i}`, `${XFCC}: Hash=00;Subject="CN=${names[(i + 1) % 3]},O=Acme"\r\n`))));
      replies.forEach((r, i) => {
        if (!body(r).xfcc?.includes(`Subject="CN=${names[i % 3]},O=Acme"`)) wrong.push(`${i}: ${body(r).xfcc}`);
      });
    }
    for (const c of conns) c.close();
    expect(wrong).toEqual([]);
  }, 20_000);

  test("the client's own address is the one forwarded, not the front's", async () => {
    const conn = await connectAs(web, 0, "127.0.0.2");
    expect(body(await conn.request(get("/"))).xff).toBe("127.0.0.2");
    conn.close();
  });

  test("no certificate, one from another CA, or a server certificate: the handshake is refused", async () => {
    for (const cert of [undefined, stranger, serverAsClient]) {
      const error = await connectAs(cert).then((c) => (c.close(), undefined), (e: Error) => e);
      expect(error).toBeInstanceOf(Error);
    }
    // …and the listener goes on serving.
    const conn = await connectAs(web);
    expect((await conn.request(get("/"))).status).toBe(200);
    conn.close();
  });

  test("a WebSocket through the front: the upstream handshake carries the identity, not the client's forgery", async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port(0)}/chat`, {
      headers: { [XFCC]: "Hash=00;Subject=\"CN=admin\"" },
      tls: { ca: pki.ca.certPem, serverName: "api.test", cert: web.certPem, key: web.keyPem },
    } as unknown as string[]);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const echoed = new Promise<string>((resolve) => (ws.onmessage = (e) => resolve(String(e.data))));
    ws.send("ping over mTLS");
    expect(await echoed).toBe("ping over mTLS");
    ws.close();
    expect(wsHandshakes.at(-1)![XFCC]).toContain('Subject="CN=web,O=Acme"');
  });

  test("a connection to the inner server that bypasses the front is refused", async () => {
    const innerPort = proxy.running.proxies[0]!.front!.innerPort;
    const reply = await rawRequest(innerPort, get("/", `${XFCC}: Hash=00;Subject="CN=admin"\r\nConnection: close\r\n`));
    expect(reply.status).toBe(403);
    expect(JSON.parse(reply.body).error).toBe("tls_required");
  });

  test("a local process dialling the inner port from another loopback address with a relayed connection's port gets no identity", async () => {
    const conn = await connectAs(web);
    expect(body(await conn.request(get("/"))).xfcc).toContain('Subject="CN=web,O=Acme"');
    const front = proxy.running.proxies[0]!.front!;
    const { connect } = await import("node:net");
    const replies: string[] = [];
    for (const localPort of front.connections.ports()) {
      replies.push(await new Promise<string>((resolve) => {
        const s = connect({ host: "127.0.0.1", port: front.innerPort, localAddress: "127.0.0.2", localPort });
        let text = "";
        s.on("data", (d: Buffer) => (text += d.toString("latin1")));
        s.on("error", (e) => resolve(`error ${e.message}`));
        s.on("close", () => resolve(text));
        s.on("connect", () => s.write(get("/spoof", "Connection: close\r\n")));
        setTimeout(() => (s.destroy(), resolve(`timeout ${text}`)), 3000);
      }));
    }
    conn.close();
    expect(replies.length).toBeGreaterThan(0);
    for (const reply of replies) {
      expect(reply).toStartWith("HTTP/1.1 403");
      expect(reply).not.toContain("CN=web");
    }
  });
});

describe("what later phases do with the identity", () => {
  test("an authorize rule on the client certificate's URI and subject: billing passes, web is refused", async () => {
    const [payer, other] = await Promise.all([connectAs(billing), connectAs(web)]);
    expect((await payer.request(get("/pay/1"))).status).toBe(200);
    const refused = await other.request(get("/pay/1"));
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error).toBe("forbidden");
    payer.close();
    other.close();
  });

  test("large bodies pass intact both ways (backpressure through the relay)", async () => {
    const tls = { ca: pki.ca.certPem, serverName: "api.test", cert: web.certPem, key: web.keyPem };
    const down = await fetch(`https://127.0.0.1:${port(0)}/download`, { tls } as RequestInit);
    const got = new Uint8Array(await down.arrayBuffer());
    expect(got.length).toBe(bigBody.length);
    expect(Buffer.compare(got, bigBody)).toBe(0);
    const up = await fetch(`https://127.0.0.1:${port(0)}/upload`, { method: "POST", body: bigBody, tls } as RequestInit);
    expect(await up.text()).toBe(new Bun.CryptoHasher("sha256").update(bigBody).digest("hex"));
  });
});

describe("request", () => {
  test("a client without a certificate is let in without an identity; a forged header is still removed", async () => {
    const conn = await connectAs(undefined, 1);
    const seen = body(await conn.request(get("/", `${XFCC}: Hash=00\r\n`)));
    expect(seen.xfcc).toBeNull();
    conn.close();
  });

  test("a client with a certificate that does not verify is refused, not let in as anonymous", async () => {
    const error = await connectAs(stranger, 1).then((c) => (c.close(), undefined), (e: Error) => e);
    expect(error).toBeInstanceOf(Error);
  });

  test("sanitize (the default): a verified identity is not forwarded", async () => {
    const conn = await connectAs(web, 1);
    expect(body(await conn.request(get("/", `${XFCC}: Hash=00\r\n`))).xfcc).toBeNull();
    conn.close();
  });
});

test("a plain listener never passes a client's x-forwarded-client-cert", async () => {
  const reply = await rawRequest(port(2), get("/", `${XFCC}: Hash=00;Subject="CN=admin"\r\nConnection: close\r\n`));
  expect(reply.status).toBe(200);
  expect(JSON.parse(reply.body).xfcc).toBeNull();
});

describe("hostile peers at the front", () => {
  test("handshakes in progress are bounded: beyond max_pending_handshakes a new connection is closed at once", async () => {
    const { connect } = await import("node:net");
    const front = proxy.running.proxies[1]!.front!;
    const open = (): Promise<{ socket: import("node:net").Socket; closed: () => boolean }> =>
      new Promise((resolve) => {
        const socket = connect({ host: "127.0.0.1", port: port(1) });
        let closed = false;
        socket.on("close", () => (closed = true));
        socket.on("error", () => {});
        socket.on("connect", () => resolve({ socket, closed: () => closed }));
      });
    const silent = [await open(), await open(), await open()];
    await waitFor("three handshakes pending at the front", () => front.handshaking() === 3);
    const extra = await open();
    await waitFor("the fourth closed at once, not at the ~2 s handshake timeout", () => extra.closed(), 1000);
    for (const s of silent) expect(s.closed()).toBe(false); // still waiting out their timeout
    for (const s of silent) s.socket.destroy();
    await waitFor("the front letting them go", () => front.handshaking() === 0);
    const conn = await connectAs(undefined, 1);
    expect((await conn.request(get("/"))).status).toBe(200);
    conn.close();
  });

  test("a silent connection is dropped after the handshake timeout (the listener's idle_timeout)", async () => {
    const { connect } = await import("node:net");
    const started = performance.now();
    const closedAfter = await new Promise<number>((resolve) => {
      const s = connect({ host: "127.0.0.1", port: port(0) });
      s.on("close", () => resolve(performance.now() - started));
      s.on("error", () => {});
      setTimeout(() => {
        s.destroy();
        resolve(Number.POSITIVE_INFINITY);
      }, 5000);
    });
    expect(closedAfter).toBeGreaterThan(1500);
    expect(closedAfter).toBeLessThan(4500);
  });

  test("garbage, plain HTTP and a truncated ClientHello are closed; the front goes on", async () => {
    for (const bytes of [get("/"), new Uint8Array(4096).fill(0x16), Buffer.from("160301020001", "hex")]) {
      const reply = await rawRequest(port(0), bytes, { quietMs: 200, timeoutMs: 3000 });
      expect(reply.raw.startsWith("HTTP/")).toBe(false);
    }
    const conn = await connectAs(web);
    expect((await conn.request(get("/"))).status).toBe(200);
    conn.close();
  });

  test("a client that vanishes mid-request leaves no connection entry behind", async () => {
    const front = proxy.running.proxies[0]!.front!;
    const before = front.connections.size; // other tests' keep-alive connections may still be open
    for (let i = 0; i < 10; i++) {
      const conn = await connectAs(web);
      conn.socket.write("GET /half HTTP/1.1\r\nHost: api.test\r\nContent-Length: 100\r\n\r\nabc");
      conn.socket.destroy();
    }
    await waitFor("the vanished clients' entries to go", () => front.connections.size === before);
  });
});

describe("rotation", () => {
  test("new certificate files are served to new connections; an open connection goes on", async () => {
    const open = await connectAs(web);
    expect(open.peer.subject.CN).toBe("api.test");
    const rotated = pki.issue("server-rotated", { subject: "/CN=api.test rotated", dns: ["api.test"], usage: "server" });
    writeFileSync(live.key, rotated.keyPem);
    writeFileSync(live.cert, rotated.certPem);
    await waitFor("the rotated certificate", async () => {
      const c = await connectAs(web);
      c.close();
      return c.peer.subject.CN === "api.test rotated";
    });
    expect((await open.request(get("/still-here"))).status).toBe(200);
    open.close();
  });
});

test("workers: 2 share an mTLS port (each with its own front); every connection gets its identity", async () => {
  const port = freePort();
  const cli = await spawnWorkers({
    workers: 2,
    listeners: [{ address: "127.0.0.1", port, tls: { certificates: [{ cert: server.cert, key: server.key }], client_auth: { mode: "require", ca: pki.ca.cert, forward_client_cert: "set" } } }],
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [{ to: "up" }],
    access_log: { enabled: false },
  });
  try {
    for (let i = 0; i < 12; i++) {
      const conn = await tlsConnect({ port, servername: "api.test", ca: pki.ca.certPem, cert: (i % 2 ? web : billing).certPem, key: (i % 2 ? web : billing).keyPem });
      expect(body(await conn.request(get(`/w${i}`))).xfcc).toContain(i % 2 ? 'Subject="CN=web,O=Acme"' : 'Subject="CN=billing,O=Acme"');
      conn.close();
    }
    expect(cli.events.filter((e) => e.msg === "worker exited; restarting")).toEqual([]);
  } finally {
    expect(await cli.stop()).toBe(0);
    cli.cleanup();
  }
});

test("SIGTERM: a download a slow client is still reading through the front is finished, and idle connections (used or not) do not hold the drain", async () => {
  const port = freePort();
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port, tls: { certificates: [{ cert: server.cert, key: server.key }], client_auth: { mode: "require", ca: pki.ca.cert } } }],
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [{ to: "up" }],
    access_log: { path: "stdout" },
    shutdown: { drain_timeout: "8s" },
  });
  const cli = await spawnProxy(config.file);
  try {
    const kept = await tlsConnect({ port, servername: "api.test", ca: pki.ca.certPem, cert: billing.certPem, key: billing.keyPem });
    expect((await kept.request(get("/kept"))).status).toBe(200);
    const unused = await tlsConnect({ port, servername: "api.test", ca: pki.ca.certPem, cert: billing.certPem, key: billing.keyPem });
    const conn = await tlsConnect({ port, servername: "api.test", ca: pki.ca.certPem, cert: web.certPem, key: web.keyPem });
    // Reads at about 6 MiB/s: the 8 MiB body takes ~1.3 s, most of it after SIGTERM, while the
    // upstream and the inner server are long done with it (it sits in socket buffers and the front).
    const started = performance.now();
    let received = Buffer.alloc(0);
    conn.socket.removeAllListeners("data");
    conn.socket.on("data", (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const ahead = received.length / 6_300 - (performance.now() - started);
      if (ahead > 5) {
        conn.socket.pause();
        setTimeout(() => conn.socket.resume(), ahead); // the delay is the scenario: a slow reader
      }
    });
    conn.socket.write(get("/download"));
    // SIGTERM as soon as the inner server is done with it (its access log line): the whole answer
    // is then in the front and in socket buffers. The drain used to let go of it once the front's
    // socket had taken the bytes, and stop(true) destroyed that socket with the last TLS records
    // still in it (~50 KB lost, 3 runs of 40); see relayActive and the test below.
    await waitFor("the access log line of /download", () => cli.stdout.find((line) => line.includes("/download")), 5000);
    const signalled = performance.now();
    cli.proc.kill("SIGTERM");
    expect(await cli.proc.exited).toBe(0);
    const drainMs = performance.now() - signalled;
    expect(await conn.closed(3000)).toBe(true);
    expect(await kept.closed(1000)).toBe(true);
    expect(await unused.closed(1000)).toBe(true);
    const end = received.indexOf("\r\n\r\n");
    expect(received.subarray(0, end).toString()).toStartWith("HTTP/1.1 200");
    const head = received.subarray(0, end).toString();
    const rest = received.subarray(end + 4);
    const body: Buffer[] = [];
    if (/content-length/i.test(head)) body.push(rest);
    else {
      for (let at = 0, i = 0; i < 100_000; i++) { // chunked framing
        const eol = rest.indexOf("\r\n", at);
        const size = eol === -1 ? 0 : Number.parseInt(rest.subarray(at, eol).toString(), 16);
        if (!size) break;
        body.push(rest.subarray(eol + 2, eol + 2 + size));
        at = eol + 4 + size;
      }
    }
    expect(Buffer.concat(body).length).toBe(bigBody.length);
    expect(Buffer.compare(Buffer.concat(body), bigBody)).toBe(0);
    expect(drainMs).toBeLessThan(6000); // the idle connections were not waited for until the deadline
  } finally {
    if (cli.proc.exitCode === null) await cli.stop();
    config.cleanup();
  }
}, 20000);

test("the front counts a used connection as active until its client has closed it, so a drain never lets go of an answer the client has not read", async () => {
  // The inner server answers 8 MiB at once and closes; the client reads slowly. Bun's TLS socket
  // reports its buffer empty once its native socket took the bytes, while the kernel still had no
  // room for the last records: counting the relay idle then let a drain destroy it with them.
  const total = 8 * 1024 * 1024;
  const send = (socket: import("bun").Socket<{ sent: number }>) => {
    while (socket.data.sent < total) {
      const written = socket.write(bigBody.subarray(socket.data.sent, Math.min(total, socket.data.sent + 65536)));
      socket.data.sent += Math.max(written, 0);
      if (written <= 0) return; // on with drain
    }
    socket.end();
  };
  const inner = Bun.listen<{ sent: number }>({
    hostname: "127.0.0.1", port: 0,
    socket: {
      open: (socket) => void (socket.data = { sent: 0 }),
      data: (socket) => void (socket.data.sent === 0 && send(socket)),
      drain: send,
    },
  });
  const connections = new FrontConnections();
  const front = await startMtlsFront(
    { certificates: [{ cert: server.certPem, key: server.keyPem, serverNames: ["api.test"] }], clientCa: pki.ca.certPem, files: [], digest: "test" },
    { address: "127.0.0.1", port: 0, reusePort: false, clientAuth: ClientAuthSchema.parse({ mode: "require", ca: pki.ca.cert }), innerPort: inner.port, connections, handshakeTimeoutMs: 5000 },
  );
  try {
    const conn = await tlsConnect({ port: front.port, servername: "api.test", ca: pki.ca.certPem, cert: web.certPem, key: web.keyPem });
    const started = performance.now();
    let received = 0;
    let receivedWhenIdle: number | undefined;
    conn.socket.removeAllListeners("data");
    conn.socket.on("data", (d: Buffer) => {
      received += d.length;
      const ahead = received / 6_300 - (performance.now() - started);
      if (ahead > 5) {
        conn.socket.pause();
        setTimeout(() => conn.socket.resume(), ahead);
      }
    });
    conn.socket.write("x");
    // As main.ts's drain polls it, more often.
    while (receivedWhenIdle === undefined && performance.now() - started < 8000) {
      await Bun.sleep(5);
      if (front.active() === 0) receivedWhenIdle = received;
    }
    expect(await conn.closed(5000)).toBe(true);
    expect(received).toBe(total);
    expect(receivedWhenIdle).toBe(total); // not idle while part of the answer was still on its way
    expect(connections.size).toBe(0);
  } finally {
    front.stop(true);
    inner.stop(true);
  }
}, 20000);
