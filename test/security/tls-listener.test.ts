/**
 * Downstream TLS on a plain Bun.serve listener: certificates by SNI, TLS 1.2+ only, and rotation
 * of the files (on change and on SIGHUP's reload) without cutting what is in flight.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, writeFileSync } from "node:fs";
import { makePki, type TestCert, type TestPki } from "../helpers/certs.ts";
import { spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { captureEvents } from "../helpers/events.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tlsConnect } from "../helpers/tls-client.ts";
import { waitFor } from "../helpers/tmp.ts";
import { recordingUpstream, startUpstream, type Upstream } from "../helpers/upstream.ts";

let pki: TestPki;
let a: TestCert;
let b: TestCert;
let upstream: Upstream & { seen: { headers: Record<string, string> }[] };
let slow: Upstream;
let proxy: TestProxy;
/** The files the listener reads; the tests overwrite them to rotate. */
let live: { cert: string; key: string };

/** The subject CN the listener presents for `servername`. */
async function servedCn(servername: string | undefined, port = proxy.port): Promise<string> {
  const conn = await tlsConnect({ port, servername, ca: pki.ca.certPem, checkServerIdentity: () => undefined });
  const cn = conn.peer.subject.CN as string;
  conn.close();
  return cn;
}

beforeAll(async () => {
  pki = makePki();
  a = pki.issue("a", { subject: "/CN=a.test", dns: ["a.test"], ips: ["127.0.0.1"], usage: "server" });
  b = pki.issue("b", { subject: "/CN=b.test", dns: ["b.test", "*.b.test"], usage: "server" });
  live = { cert: pki.file("live.pem"), key: pki.file("live.key") };
  copyFileSync(a.cert, live.cert);
  copyFileSync(a.key, live.key);
  upstream = recordingUpstream("hello");
  // Streams ten chunks, 100 ms apart: in flight across a certificate swap.
  slow = startUpstream((req, server) => {
    if (req.headers.get("upgrade") === "websocket") return server.upgrade(req, { data: undefined }) ? undefined : new Response("no", { status: 400 });
    let i = 0;
    return new Response(new ReadableStream({
      async pull(c) {
        await Bun.sleep(100); // the delay is the scenario: a response in flight across the swap
        if (i++ >= 10) c.close();
        else c.enqueue(new TextEncoder().encode(`chunk${i};`));
      },
    }));
  }, { message: (ws, m) => void ws.send(`echo:${m}`) });
  proxy = await startProxy({
    listeners: [{
      address: "127.0.0.1", port: 0,
      tls: {
        certificates: [
          { cert: live.cert, key: live.key },
          { cert: b.cert, key: b.key },
          { cert: b.cert, key: b.key, server_names: ["other.test"] },
        ],
      },
    }, {
      // The same names on an mTLS listener: its node:tls front chooses by SNI itself.
      address: "127.0.0.1", port: 0,
      tls: {
        certificates: [{ cert: a.cert, key: a.key }, { cert: b.cert, key: b.key }, { cert: b.cert, key: b.key, server_names: ["other.test"] }],
        client_auth: { mode: "request", ca: pki.ca.cert },
      },
    }],
    clusters: { up: { endpoints: [upstream.origin] }, slow: { endpoints: [slow.origin] } },
    routes: [{ match: { path: { prefix: "/slow" } }, to: "slow", websocket: true }, { to: "up" }],
  });
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
  slow.stop(true);
  pki.cleanup();
});

describe("certificates by SNI", () => {
  test("each name gets its certificate; wildcards match one label; the first answers the rest", async () => {
    expect(await servedCn("a.test")).toBe("a.test");
    expect(await servedCn("b.test")).toBe("b.test");
    expect(await servedCn("x.b.test")).toBe("b.test");
    expect(await servedCn("other.test")).toBe("b.test"); // server_names given explicitly
    expect(await servedCn("unknown.test")).toBe("a.test");
    expect(await servedCn(undefined)).toBe("a.test"); // no SNI at all
  });

  test("names match in any case and with a trailing dot, on a TLS and an mTLS listener alike", async () => {
    for (const port of [proxy.port, proxy.running.proxies[1]!.port]) {
      expect(await servedCn("B.TEST", port)).toBe("b.test");
      expect(await servedCn("X.B.Test", port)).toBe("b.test");
      expect(await servedCn("b.test.", port)).toBe("b.test");
      expect(await servedCn("x.b.test.", port)).toBe("b.test");
      expect(await servedCn("Other.Test.", port)).toBe("b.test");
      expect(await servedCn("unknown.test.", port)).toBe("a.test");
      expect(await servedCn(undefined, port)).toBe("a.test");
    }
  });

  test("requests pass over TLS, and the upstream is told the client came over https", async () => {
    const res = await fetch(`https://127.0.0.1:${proxy.port}/hi`, { tls: { ca: pki.ca.certPem, serverName: "b.test" } } as RequestInit);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hello");
    expect(upstream.seen.at(-1)!.headers["x-forwarded-proto"]).toBe("https");
  });

  test("plain HTTP on the TLS port gets no answer, and the listener goes on serving", async () => {
    const raw = await import("../helpers/raw.ts");
    const reply = await raw.rawRequest(proxy.port, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", { quietMs: 200, timeoutMs: 2000 });
    expect(reply.raw.startsWith("HTTP/1.1 200")).toBe(false);
    expect(await servedCn("a.test")).toBe("a.test");
  });
});

describe("protocol versions", () => {
  /** The protocol `openssl s_client` ends up with against `port` when told to speak only `version` (SECLEVEL=0, so the client itself may offer old versions). */
  async function negotiated(port: number, version: "tls1" | "tls1_1" | "tls1_2" | "tls1_3"): Promise<string> {
    const proc = Bun.spawn(["openssl", "s_client", "-connect", `127.0.0.1:${port}`, "-servername", "a.test", `-${version}`, "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"], {
      stdin: "pipe", stdout: "pipe", stderr: "pipe",
    });
    proc.stdin.end();
    const timer = setTimeout(() => proc.kill(), 5000);
    const out = (await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text());
    clearTimeout(timer);
    await proc.exited;
    if (/alert protocol version|no protocols available|unsupported protocol/i.test(out)) return "refused";
    return /Protocol version: *(\S+)/.exec(out)?.[1] ?? `unknown: ${out.slice(0, 300)}`;
  }

  test("TLS 1.0 and 1.1 handshakes are refused; 1.2 and 1.3 are spoken", async () => {
    expect(await negotiated(proxy.port, "tls1")).toBe("refused");
    expect(await negotiated(proxy.port, "tls1_1")).toBe("refused");
    expect(await negotiated(proxy.port, "tls1_2")).toBe("TLSv1.2");
    expect(await negotiated(proxy.port, "tls1_3")).toBe("TLSv1.3");
  });

  test("control: the same client does speak TLS 1.1 to a server that allows it", async () => {
    const port = (await import("../helpers/upstream.ts")).freePort();
    const server = Bun.spawn(["openssl", "s_server", "-accept", `127.0.0.1:${port}`, "-cert", a.cert, "-key", a.key, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"], {
      stdin: "pipe", stdout: "pipe", stderr: "pipe",
    });
    try {
      const reader = server.stdout.getReader();
      let banner = "";
      await waitFor("openssl s_server to listen", async () => {
        const { value } = await reader.read();
        banner += new TextDecoder().decode(value);
        return banner.includes("ACCEPT");
      });
      expect(await negotiated(port, "tls1_1")).toBe("TLSv1.1");
    } finally {
      server.kill();
      await server.exited;
    }
  });
});

describe("rotation", () => {
  test("new files take effect for new connections; a response streaming and a WebSocket open meanwhile are not cut", async () => {
    expect(await servedCn("a.test")).toBe("a.test");
    const ws = new WebSocket(`wss://127.0.0.1:${proxy.port}/slow/ws`, { tls: { ca: pki.ca.certPem, serverName: "a.test" } } as unknown as string[]);
    const messages: string[] = [];
    ws.onmessage = (e) => messages.push(String(e.data));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ws.send("before");
    await waitFor("the first echo", () => messages.length === 1);
    const slowRes = await fetch(`https://127.0.0.1:${proxy.port}/slow`, { tls: { ca: pki.ca.certPem, serverName: "a.test" } } as RequestInit);
    const reader = slowRes.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value); // the stream is under way
    const streaming = (async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
      return text;
    })();
    const a2 = pki.issue("a2", { subject: "/CN=a.test rotated", dns: ["a.test"], usage: "server" });
    // Key first, then certificate, as a careless deploy would: the half-written state is refused, the old pair stays.
    const log = captureEvents();
    try {
      writeFileSync(live.key, a2.keyPem);
      await log.waitForEvent("tls files rejected; the certificates in force stay");
    } finally {
      log.restore();
    }
    expect(await servedCn("a.test")).toBe("a.test");
    writeFileSync(live.cert, a2.certPem);
    await waitFor("the rotated certificate", async () => (await servedCn("a.test")) === "a.test rotated");
    expect(await streaming).toBe(Array.from({ length: 10 }, (_, i) => `chunk${i + 1};`).join(""));
    ws.send("after");
    await waitFor("the echo after the swap", () => messages.length === 2);
    expect(messages).toEqual(["echo:before", "echo:after"]);
    ws.close();
    const res = await fetch(`https://127.0.0.1:${proxy.port}/after`, { tls: { ca: pki.ca.certPem, serverName: "a.test" } } as RequestInit);
    expect(res.status).toBe(200);
  });

  test("a reload (SIGHUP) re-reads the files too; unchanged files change nothing", async () => {
    const a3 = pki.issue("a3", { subject: "/CN=a.test third", dns: ["a.test"], usage: "server" });
    // Written without a watch seeing it in time: the reload must pick it up on its own.
    writeFileSync(live.cert, a3.certPem);
    writeFileSync(live.key, a3.keyPem);
    await proxy.running.reload();
    expect(await servedCn("a.test")).toBe("a.test third");
    const listener = proxy.running.proxies[0]!;
    expect(listener.reloadTls()).toBe("unchanged");
  });

  test("a key that does not match is refused with its config path; the certificate in force stays", async () => {
    const listener = proxy.running.proxies[0]!;
    writeFileSync(live.key, b.keyPem);
    expect(() => listener.reloadTls()).toThrow("listeners[0].tls.certificates[0].key: " + live.key + " is not the key of the certificate in " + live.cert);
    expect(await servedCn("a.test")).toBe("a.test third");
  });
});

test("the CLI: SIGHUP re-reads certificate files that are not watched", async () => {
  const files = { cert: pki.file("hup.pem"), key: pki.file("hup.key") };
  copyFileSync(a.cert, files.cert);
  copyFileSync(a.key, files.key);
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: 0, tls: { certificates: [files], watch: false } }],
    access_log: { enabled: false },
  });
  const cli = await spawnProxy(config.file);
  try {
    expect(await servedCn("a.test", cli.port)).toBe("a.test");
    const next = pki.issue("hup-next", { subject: "/CN=a.test after hup", dns: ["a.test"], usage: "server" });
    writeFileSync(files.key, next.keyPem);
    writeFileSync(files.cert, next.certPem);
    await Bun.sleep(300); // a negative check: a watch (200 ms debounce) would have reloaded by now
    expect(await servedCn("a.test", cli.port)).toBe("a.test"); // not watched: nothing yet
    const seen = cli.events.length;
    cli.proc.kill("SIGHUP");
    await cli.waitForEvent("tls certificates reloaded", seen);
    expect(await servedCn("a.test", cli.port)).toBe("a.test after hup");
  } finally {
    expect(await cli.stop()).toBe(0);
    config.cleanup();
  }
});
