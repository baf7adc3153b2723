/** The egress (forward) proxy: policy, absolute-form HTTP and CONNECT tunnels through real clients (curl, fetch's proxy), timeouts, logs, metrics. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { chooseAddress } from "../../src/egress/destination.ts";
import { compilePolicy, parseAuthority } from "../../src/egress/policy.ts";
import { EgressSchema } from "../../src/egress/schema.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { type Blackhole, startBlackhole } from "../helpers/blackhole.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

describe("policy (pure)", () => {
  const policy = compilePolicy(EgressSchema.parse({
    allow: [
      { host: "api.example.com", ports: [443] },
      { host: "*.cdn.example.com" },
      { host: "localhost", ports: [8080] },
      { cidr: "10.0.0.0/8", ports: [5432] },
      { cidr: "127.0.0.1", ports: [9000] },
    ],
  }).allow);
  const resolver = (table: Record<string, string[]>) => async (host: string) => {
    const found = table[host];
    if (found === undefined) throw new Error("ENOTFOUND");
    return found;
  };
  const dns = resolver({
    "api.example.com": ["93.184.216.34"],
    "img.cdn.example.com": ["93.184.216.35"],
    "localhost": ["127.0.0.1", "::1"],
    "db.internal": ["10.1.2.3"],
    "rebind.cdn.example.com": ["169.254.169.254"],
    "mixed.cdn.example.com": ["127.0.0.1", "93.184.216.36"],
    "mapped.cdn.example.com": ["::ffff:127.0.0.1"],
  });
  const decide = async (host: string, port: number) => {
    const r = await chooseAddress(policy, { host, port }, 1000, dns);
    return typeof r === "string" ? r : `${r.status} ${r.message}`;
  };

  test.each([
    ["api.example.com", 443, "93.184.216.34"],
    ["api.example.com", 80, "403 api.example.com:80 is not an allowed destination"],
    ["img.cdn.example.com", 80, "93.184.216.35"],
    ["cdn.example.com", 443, "403 cdn.example.com:443 is not an allowed destination"],
    ["evil.com", 443, "403 evil.com:443 is not an allowed destination"],
    ["localhost", 8080, "403 localhost:8080 resolves to a loopback, link-local or other special address (allow it with a cidr rule)"],
    ["rebind.cdn.example.com", 443, "403 rebind.cdn.example.com:443 resolves to a loopback, link-local or other special address (allow it with a cidr rule)"],
    ["mixed.cdn.example.com", 443, "93.184.216.36"],
    ["mapped.cdn.example.com", 443, "403 mapped.cdn.example.com:443 resolves to a loopback, link-local or other special address (allow it with a cidr rule)"],
    ["db.internal", 5432, "10.1.2.3"],
    ["10.9.9.9", 5432, "10.9.9.9"],
    ["10.9.9.9", 22, "403 10.9.9.9:22 is not an allowed destination"],
    ["127.0.0.1", 9000, "127.0.0.1"],
    ["127.0.0.2", 9000, "403 127.0.0.2:9000 is not an allowed destination"],
    ["169.254.169.254", 80, "403 169.254.169.254:80 is not an allowed destination"],
    ["nowhere.cdn.example.com", 443, "502 nowhere.cdn.example.com does not resolve"],
  ])("%s:%d → %s", async (host, port, want) => expect(await decide(host, port)).toBe(want));

  test("a name no rule could allow is refused without a DNS lookup", async () => {
    const onlyNames = compilePolicy(EgressSchema.parse({ allow: [{ host: "api.example.com" }] }).allow);
    let lookups = 0;
    const r = await chooseAddress(onlyNames, { host: "evil.com", port: 443 }, 1000, async () => {
      lookups++;
      return ["1.2.3.4"];
    });
    expect(typeof r).not.toBe("string");
    expect(lookups).toBe(0);
  });

  test.each([
    ["example.com:443", { host: "example.com", port: 443 }],
    ["EXAMPLE.com.:80", { host: "example.com", port: 80 }],
    ["[::1]:8443", { host: "::1", port: 8443 }],
    ["1.2.3.4:65535", { host: "1.2.3.4", port: 65535 }],
    ["example.com", undefined],
    ["example.com:0", undefined],
    ["example.com:70000", undefined],
    ["user@example.com:443", undefined],
    ["::1:443", undefined],
    ["exa mple.com:443", undefined],
  ])("authority %s", (text, want) => expect(parseAuthority(text)).toEqual(want as never));
});

let up: Upstream;
let seen: { method: string; url: string; host: string | null; headers: Headers; body: string }[] = [];
let echo: NetServer;
let echoPort = 0;
let blast: NetServer;
let blastPort = 0;
let blastWritten = 0;
let blackhole: Blackhole;
let closedPort = 0;
let proxy: TestProxy;
let openPort = 0;
let strictPort = 0;
const blastTotal = 64 * 1024 * 1024;

function tcpServer(onSocket: (s: Socket) => void): Promise<{ server: NetServer; port: number }> {
  return new Promise((resolve) => {
    const server = createServer(onSocket);
    server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

async function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["curl", "-sS", "-m", "5", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const url = new URL(req.url);
    seen.push({ method: req.method, url: `${url.pathname}${url.search}`, host: req.headers.get("host"), headers: req.headers, body: await req.text() });
    if (url.pathname === "/big") return new Response("z".repeat(300_000));
    return new Response(`hello from ${url.pathname}`, { headers: { "x-upstream": "yes", "set-cookie": "a=1" } });
  });
  ({ server: echo, port: echoPort } = await tcpServer((s) => {
    s.on("data", (d) => s.write(d));
    s.on("error", () => {});
  }));
  // Writes 64 MiB as fast as the tunnel takes it, counting what it got rid of.
  ({ server: blast, port: blastPort } = await tcpServer((s) => {
    s.on("error", () => {});
    const chunk = Buffer.alloc(64 * 1024, 120);
    let sent = 0;
    const pump = () => {
      while (sent < blastTotal) {
        sent += chunk.length;
        blastWritten = sent;
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
      s.end();
    };
    pump();
  }));
  blackhole = await startBlackhole();
  closedPort = freePort();
  const ports = [up.port!, echoPort, blastPort, blackhole.port, closedPort];
  proxy = await startProxy({
    listeners: [
      { address: "127.0.0.1", port: 0 },
      {
        name: "egress-open", address: "127.0.0.1", port: 0, mode: "egress",
        egress: { allow: [{ cidr: "127.0.0.0/8", ports }, { host: "localhost", ports: [up.port!] }], timeouts: { connect: "300ms", idle: "400ms" } },
      },
      {
        name: "egress-strict", address: "127.0.0.1", port: 0, mode: "egress",
        egress: { allow: [{ host: "localhost", ports: [up.port!] }, { host: "*.example.com", ports: [443] }] },
      },
    ],
    routes: [],
  });
  openPort = proxy.running.egress.find((e) => e.name === "egress-open")!.port;
  strictPort = proxy.running.egress.find((e) => e.name === "egress-strict")!.port;
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  echo.close();
  blast.close();
  blackhole.close();
});

type ErrorBody = { error: string; message: string; request_id: string };

describe("absolute-form HTTP", () => {
  test("curl -x: forwarded with the target's authority as Host, proxy headers dropped, answer and cookies back", async () => {
    seen = [];
    const r = await curl(["-i", "-x", `http://127.0.0.1:${openPort}`, "-H", "Proxy-Authorization: Basic c2VjcmV0", "-H", "X-Custom: 1", `http://127.0.0.1:${up.port}/path?q=1`]);
    expect(r.code).toBe(0);
    expect(r.out).toStartWith("HTTP/1.1 200 OK");
    expect(r.out).toContain("hello from /path");
    expect(r.out.toLowerCase()).toContain("set-cookie: a=1");
    expect(r.out.toLowerCase()).toContain("x-upstream: yes");
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: "GET", url: "/path?q=1", host: `127.0.0.1:${up.port}` });
    expect(seen[0]!.headers.get("proxy-authorization")).toBeNull();
    expect(seen[0]!.headers.get("proxy-connection")).toBeNull();
    expect(seen[0]!.headers.get("x-custom")).toBe("1");
  });

  test("the access log line and metrics of an exchange", async () => {
    const r = await curl(["-D", "-", "-o", "/dev/null", "-x", `http://127.0.0.1:${openPort}`, `http://127.0.0.1:${up.port}/logged`]);
    const id = /x-request-id: (\S+)/i.exec(r.out)![1]!;
    const line = await proxy.logOf(id);
    expect(line).toMatchObject({ listener: "egress-open", method: "GET", host: `127.0.0.1:${up.port}`, path: "/logged", status: 200, endpoint: `127.0.0.1:${up.port}`, error: null, route: null });
    expect(line.bytes_out).toBe("hello from /logged".length);
    expect(metrics.egressRequests.sum((l) => l[0] === "egress-open" && l[1] === "http" && l[2] === "2xx")).toBeGreaterThanOrEqual(2);
  });

  test("request bodies stream up, large answers stream down", async () => {
    seen = [];
    const post = await curl(["-x", `http://127.0.0.1:${openPort}`, "--data-binary", "x".repeat(100_000), `http://127.0.0.1:${up.port}/upload`]);
    expect(post.out).toBe("hello from /upload");
    expect(seen[0]).toMatchObject({ method: "POST", body: "x".repeat(100_000) });
    const big = await curl(["-x", `http://127.0.0.1:${openPort}`, `http://127.0.0.1:${up.port}/big`]);
    expect(big.out.length).toBe(300_000);
  });

  test("fetch with the proxy option", async () => {
    const res = await fetch(`http://127.0.0.1:${up.port}/via-fetch`, { proxy: `http://127.0.0.1:${openPort}` } as RequestInit);
    expect(await res.text()).toBe("hello from /via-fetch");
  });

  test("the target's authority wins over a Host header; pipelined requests are each checked", async () => {
    seen = [];
    const res = await rawRequest(openPort, `GET http://127.0.0.1:${up.port}/first HTTP/1.1\r\nHost: evil.example\r\n\r\nGET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n`);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.host).toBe(`127.0.0.1:${up.port}`);
    expect(res.raw).toContain("hello from /first");
    expect(res.raw).toContain("HTTP/1.1 403 Forbidden");
    expect(res.raw).toContain('"error":"egress_denied"');
  });

  test("refused destinations: 403 JSON; a name resolving to loopback needs a cidr rule", async () => {
    for (const target of [`http://localhost:${up.port}/`, `http://127.0.0.1:${up.port}/`, "http://169.254.169.254/latest/meta-data", "http://example.org/"]) {
      const r = await curl(["-x", `http://127.0.0.1:${strictPort}`, "-w", "\n%{http_code}", target]);
      const [body, status] = r.out.split("\n");
      expect(status).toBe("403");
      expect((JSON.parse(body!) as ErrorBody).error).toBe("egress_denied");
    }
    // The open listener's cidr rule allows loopback: the same name goes through there.
    const allowed = await curl(["-x", `http://127.0.0.1:${openPort}`, `http://localhost:${up.port}/named`]);
    expect(allowed.out).toBe("hello from /named");
  });

  test("an absolute-form host is judged as CONNECT judges it: case and a trailing dot do not change the name", async () => {
    for (const host of ["localhost.", "LOCALHOST"]) {
      const r = await rawRequest(strictPort, `GET http://${host}:${up.port}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(r.status).toBe(403);
      // The name rule "localhost" matched; the loopback address is what refuses it.
      expect((JSON.parse(r.body) as ErrorBody).message).toBe(`localhost:${up.port} resolves to a loopback, link-local or other special address (allow it with a cidr rule)`);
    }
  });

  test("not a forward-proxy request: origin-form, https:// and credentials in the URL are 400", async () => {
    const origin = await rawRequest(openPort, "GET /path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    expect(origin.status).toBe(400);
    expect((JSON.parse(origin.body) as ErrorBody).message).toContain("absolute-form");
    const https = await rawRequest(openPort, `GET https://127.0.0.1:${up.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect((JSON.parse(https.body) as ErrorBody).message).toContain("use CONNECT");
    const creds = await rawRequest(openPort, `GET http://u:p@127.0.0.1:${up.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(creds.status).toBe(400);
  });

  test("smuggling-shaped and oversized heads are refused before any forwarding", async () => {
    seen = [];
    const both = await rawRequest(openPort, `POST http://127.0.0.1:${up.port}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`);
    expect(both.status).toBe(400);
    const huge = await rawRequest(openPort, `GET http://127.0.0.1:${up.port}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`);
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(seen).toHaveLength(0);
  });

  test("an unreachable or refusing destination: 504 connect timeout, 502 refused", async () => {
    const started = performance.now();
    const hole = await curl(["-x", `http://127.0.0.1:${openPort}`, "-w", "\n%{http_code}", `http://127.0.0.1:${blackhole.port}/`]);
    expect(hole.out.split("\n")[1]).toBe("504");
    expect((JSON.parse(hole.out.split("\n")[0]!) as ErrorBody).error).toBe("upstream_connect_timeout");
    expect(performance.now() - started).toBeLessThan(2000);
    const refused = await curl(["-x", `http://127.0.0.1:${openPort}`, "-w", "\n%{http_code}", `http://127.0.0.1:${closedPort}/`]);
    expect(refused.out.split("\n")[1]).toBe("502");
  });
});

describe("CONNECT tunnels", () => {
  test("curl -p -x: HTTP through a tunnel; logged with bytes both ways", async () => {
    seen = [];
    const r = await curl(["-p", "-x", `http://127.0.0.1:${openPort}`, `http://127.0.0.1:${up.port}/tunnelled`]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("hello from /tunnelled");
    expect(seen[0]!.host).toBe(`127.0.0.1:${up.port}`);
    // Logged once both sides have closed.
    const line = await waitFor("the tunnel's log line", async () => (await proxy.logLines()).findLast((l) => l.method === "CONNECT" && l.host === `127.0.0.1:${up.port}` && l.status === 200));
    expect(line).toMatchObject({ listener: "egress-open", status: 200, endpoint: `127.0.0.1:${up.port}`, error: null });
    expect(line.bytes_in as number).toBeGreaterThan(50);
    expect(line.bytes_out as number).toBeGreaterThan(50);
  });

  test("a refused CONNECT is 403 JSON and no connection is made", async () => {
    const strict = await rawRequest(strictPort, `CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\n`);
    expect(strict.status).toBe(403);
    expect((JSON.parse(strict.body) as ErrorBody).error).toBe("egress_denied");
    const meta = await curl(["-p", "-x", `http://127.0.0.1:${strictPort}`, "http://169.254.169.254/"]);
    expect(meta.code).not.toBe(0);
    expect(meta.err).toContain("403");
    const bad = await rawRequest(openPort, "CONNECT nowhere HTTP/1.1\r\nHost: nowhere\r\n\r\n");
    expect(bad.status).toBe(400);
  });

  test("bytes sent with the CONNECT head go through; the tunnel closes after the idle timeout", async () => {
    const started = performance.now();
    const res = await rawRequest(openPort, `CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: x\r\n\r\nping`, { quietMs: 2000, timeoutMs: 3000 });
    expect(res.raw).toStartWith("HTTP/1.1 200 Connection Established\r\n\r\nping");
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThan(350);
    expect(elapsed).toBeLessThan(1500); // closed by the 400 ms idle timeout, not the 2 s quiet wait
    const line = await waitFor("the tunnel's log line", async () => (await proxy.logLines()).findLast((l) => l.method === "CONNECT" && l.host === `127.0.0.1:${echoPort}`));
    expect(line.error).toBe("idle_timeout");
  });

  test("connect timeout and refusal are answered on the CONNECT", async () => {
    const hole = await rawRequest(openPort, `CONNECT 127.0.0.1:${blackhole.port} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(hole.status).toBe(504);
    const refused = await rawRequest(openPort, `CONNECT 127.0.0.1:${closedPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(refused.status).toBe(502);
  });

  test("backpressure: a client that does not read stops the destination's writes; all bytes arrive once it reads", async () => {
    blastWritten = 0;
    const socket = connect({ host: "127.0.0.1", port: openPort });
    socket.pause();
    socket.write(`CONNECT 127.0.0.1:${blastPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await Bun.sleep(250); // a negative check, within the 400 ms idle timeout: nothing moves while the client does not read
    const stalledAt = blastWritten;
    expect(stalledAt).toBeLessThan(blastTotal / 2); // socket buffers, not 64 MiB of memory
    let received = 0;
    const done = new Promise<void>((resolve) => {
      socket.on("data", (d: Buffer) => (received += d.length));
      socket.on("close", () => resolve());
    });
    socket.resume();
    await done;
    expect(received).toBeGreaterThan(blastTotal); // the 200 line, then every byte
    expect(received - blastTotal).toBe("HTTP/1.1 200 Connection Established\r\n\r\n".length);
  });

  test("a client that dies mid-tunnel closes the destination side", async () => {
    let destinationClosed = false;
    const { server, port } = await tcpServer((s) => {
      s.on("error", () => {});
      s.on("close", () => (destinationClosed = true));
    });
    const open = await startProxy({
      listeners: [{ address: "127.0.0.1", port: 0 }, { name: "e", address: "127.0.0.1", port: 0, mode: "egress", egress: { allow: [{ cidr: "127.0.0.1", ports: [port] }] } }],
      routes: [],
    });
    try {
      const socket = connect({ host: "127.0.0.1", port: open.running.egress[0]!.port });
      socket.on("error", () => {});
      socket.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await new Promise((r) => socket.once("data", r));
      socket.resetAndDestroy();
      await waitFor("the destination side closed", () => destinationClosed, 1000);
    } finally {
      await open.stop();
      server.close();
    }
  });
});

describe("config", () => {
  const load = (listener: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [${listener}]\n`));
  test.each([
    ["{port: 1, mode: egress}", /listeners\[0\]\.egress: an egress listener needs egress\.allow/],
    ["{port: 1, egress: {allow: [{host: a.com}]}}", /listeners\[0\]\.egress: only for mode: egress/],
    ["{port: 1, mode: egress, egress: {allow: []}}", /listeners\[0\]\.egress\.allow/],
    ["{port: 1, mode: egress, egress: {allow: [{host: a.com, cidr: 10.0.0.0/8}]}}", /give exactly one of host or cidr/],
    ["{port: 1, mode: egress, egress: {allow: [{host: 'a b'}]}}", /must be a host name/],
    ["{port: 1, mode: egress, egress: {allow: [{cidr: 10.0.0.0/33}]}}", /must be an IP address or a CIDR range/],
    ["{port: 1, mode: egress, egress: {allow: [{host: a.com, ports: [0]}]}}", /ports\[0\]/],
    ["{port: 1, mode: egress, health_checks: true, egress: {allow: [{host: a.com}]}}", /health_checks: not available on an egress listener/],
    ["{port: 1, mode: forward}", /listeners\[0\]\.mode/],
  ])("%s", (listener, message) => expect(() => load(listener)).toThrow(message));
});
