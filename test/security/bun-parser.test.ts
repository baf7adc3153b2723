/**
 * What reaches Switchyard at all: request heads and methods that Bun 1.4.5's HTTP parser answers
 * or drops before any handler runs, measured with raw sockets on a proxy listener and through an
 * mTLS listener's front (README "Known limits"). Where Bun lets a request through, Switchyard
 * answers with its JSON error; where Bun answers itself, the test pins Bun's answer; where Bun
 * closes without a byte, it pins that the close is immediate (no hang).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect as tlsConnect } from "node:tls";
import { z } from "zod";
import { compileGuard } from "../../src/security/guard.ts";
import { GuardShape } from "../../src/security/schema.ts";
import { makePki, type TestPki } from "../helpers/certs.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let app: ReturnType<typeof recordingUpstream>;
let pki: TestPki;
let proxy: TestProxy;
let mtlsPort: number;

beforeAll(async () => {
  app = recordingUpstream("app");
  pki = makePki();
  const server = pki.issue("server", { subject: "/CN=localhost", dns: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  proxy = await startProxy({
    listeners: [
      { address: "127.0.0.1", port: 0 }, // the guard's defaults: 100 fields, 16 KiB of head
      { name: "mtls", address: "127.0.0.1", port: 0, tls: { certificates: [{ cert: server.cert, key: server.key }], client_auth: { mode: "request", ca: pki.ca.cert } } },
    ],
    routes: [{ to: "app" }],
    clusters: { app: { endpoints: [app.origin] } },
  });
  mtlsPort = proxy.running.proxies[1]!.port;
});
afterAll(async () => {
  await proxy.stop();
  app.stop(true);
  pki.cleanup();
});

const fields = (n: number) => Array.from({ length: n }, (_, i) => `x-f${i}: v\r\n`).join("");
/** A request head of exactly `bytes` bytes, its final CRLF CRLF included. */
function headOf(bytes: number): string {
  const start = "GET / HTTP/1.1\r\nHost: x\r\nx-pad: ";
  return `${start}${"a".repeat(bytes - start.length - 4)}\r\n\r\n`;
}

/** Sends `bytes` and times the answer (or the close). */
async function timed(bytes: string, quietMs = 300) {
  const started = performance.now();
  const res = await rawRequest(proxy.port, bytes, { quietMs, timeoutMs: 5000 });
  return { res, ms: performance.now() - started };
}

describe("request heads", () => {
  // Bun's own answer: a bare status line with Connection: close, no body, the connection closed.
  const BUN_431 = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";
  test.each([
    ["a 1 MiB request line", `GET /${"a".repeat(1 << 20)} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ["a 1 MiB header field", `GET / HTTP/1.1\r\nHost: x\r\nx-big: ${"a".repeat(1 << 20)}\r\n\r\n`],
    ["1 MiB of head in 128 fields of 8 KiB", `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 128 }, (_, i) => `x-h${i}: ${"a".repeat(8192)}\r\n`).join("")}\r\n`],
    ["20 KiB of head in 10 fields", `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 10 }, (_, i) => `x-h${i}: ${"a".repeat(2048)}\r\n`).join("")}\r\n`],
    ["a head of 16,385 bytes (one over Bun's ceiling)", headOf(16_385)],
    ["199 header fields (Bun's count limit, Host included)", `GET / HTTP/1.1\r\nHost: x\r\n${fields(198)}\r\n`],
  ])("%s: Bun's plain 431 at once, the connection closed, nothing forwarded", async (_what, bytes) => {
    const before = app.seen.length;
    const { res, ms } = await timed(bytes);
    expect(res.raw).toBe(BUN_431);
    expect(res.closed).toBe(true);
    expect(ms).toBeLessThan(1000); // the close itself is immediate; the rest is rawRequest's reading
    expect(app.seen.length).toBe(before);
  });

  test("under Bun's limits Switchyard answers: 16,383 and 16,384 bytes of head reach it; 101 to 198 fields are the guard's JSON 431", async () => {
    for (const bytes of [16_383, 16_384]) {
      const res = await rawRequest(proxy.port, headOf(bytes), { quietMs: 100 });
      // Answered by Switchyard (its request id), not by Bun's parser. Which answer: the upstream's
      // own, here a Bun's 431 — the head plus the proxy's forwarding fields is over its 16 KiB.
      expect(res.headers["x-request-id"]).toBeDefined();
    }
    expect((await rawRequest(proxy.port, headOf(16_000), { quietMs: 100 })).status).toBe(200);
    for (const n of [101, 198]) {
      const res = await rawRequest(proxy.port, `GET / HTTP/1.1\r\nHost: x\r\n${fields(n - 1)}\r\n`, { quietMs: 100 });
      expect(res.status).toBe(431);
      expect(JSON.parse(res.body)).toMatchObject({ error: "headers_too_large", message: "the request has more than 100 header fields" });
    }
  });

  test("a 1 MiB head through an mTLS listener's front gets Bun's 431 too, not a reset; the front keeps serving", async () => {
    const head = `GET / HTTP/1.1\r\nHost: x\r\nx-big: ${"a".repeat(1 << 20)}\r\n\r\n`;
    for (let i = 0; i < 3; i++) {
      const outcome = await new Promise<{ received: string; error: string | undefined; ms: number }>((resolve) => {
        const started = performance.now();
        const socket = tlsConnect({ host: "127.0.0.1", port: mtlsPort, ca: pki.ca.certPem, servername: "localhost" });
        let received = "";
        let error: string | undefined;
        const timer = setTimeout(() => socket.destroy(), 5000);
        socket.on("secureConnect", () => socket.write(head));
        socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
        socket.on("error", (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
        socket.on("close", () => {
          clearTimeout(timer);
          resolve({ received, error, ms: performance.now() - started });
        });
      });
      expect(outcome).toMatchObject({ received: BUN_431, error: undefined });
      expect(outcome.ms).toBeLessThan(3000);
    }
    const ok = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: mtlsPort, ca: pki.ca.certPem, servername: "localhost" });
      let received = "";
      socket.on("secureConnect", () => socket.write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
      socket.on("close", () => resolve(received));
      socket.on("error", () => {});
    });
    expect(ok).toStartWith("HTTP/1.1 200 ");
  });
});

describe("methods", () => {
  test.each([
    ["lower case: delete", "delete"],
    ["lower case: get", "get"],
    ["mixed case: Get", "Get"],
    ["an unknown token: FOO", "FOO"],
    ["an unknown token: BREW", "BREW"],
    ["a registered method Bun does not know: UPDATE", "UPDATE"],
    ["a token with a dash: FOO-BAR", "FOO-BAR"],
    ["a 100-letter token", "X".repeat(100)],
  ])("%s: Bun closes the connection without a byte, at once", async (_what, method) => {
    const before = app.seen.length;
    const { res, ms } = await timed(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`, 100);
    expect(res.raw).toBe("");
    expect(res.closed).toBe(true);
    expect(ms).toBeLessThan(1000);
    expect(app.seen.length).toBe(before);
  });

  test.each([
    ["a digit: FOO1", "FOO1", 400, "Bad Request"],
    ["an underscore: GET_PARAMETER", "GET_PARAMETER", 400, "Bad Request"],
    ["a tchar Bun refuses: G!T", "G!T", 400, "Bad Request"],
    ["not a tchar: G@T", "G@T", 400, "Bad Request"],
    ["not a tchar: G(T", "G(T", 400, "Bad Request"],
    ["an 8-bit byte", "G\xe9T", 505, "HTTP Version Not Supported"],
    ["a NUL", "G\x00T", 505, "HTTP Version Not Supported"],
  ])("%s: Bun's plain %s, the connection closed", async (_what, method, status, reason) => {
    const { res, ms } = await timed(`${method} / HTTP/1.1\r\nHost: x\r\n\r\n`, 100);
    expect(res.raw).toBe(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\n\r\n`);
    expect(res.closed).toBe(true);
    expect(ms).toBeLessThan(1000);
  });

  test("every method Bun passes on is forwarded (TRACE and CONNECT refused with 405)", async () => {
    const forwarded = ["ACL", "BIND", "CHECKOUT", "COPY", "DELETE", "GET", "HEAD", "LINK", "LOCK", "M-SEARCH", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MOVE", "NOTIFY", "OPTIONS", "PATCH", "POST", "PROPFIND", "PROPPATCH", "PURGE", "PUT", "QUERY", "REBIND", "REPORT", "SEARCH", "SOURCE", "SUBSCRIBE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE"];
    for (const method of forwarded) {
      const res = await rawRequest(proxy.port, `${method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, { quietMs: 1000 });
      expect({ method, status: res.status }).toEqual({ method, status: 200 });
      expect(app.seen.at(-1)!.method).toBe(method);
    }
    for (const method of ["TRACE", "CONNECT"]) {
      const res = await rawRequest(proxy.port, `${method} / HTTP/1.1\r\nHost: x\r\n\r\n`, { quietMs: 100 });
      expect(res.status).toBe(405);
      expect(JSON.parse(res.body).error).toBe("method_not_allowed");
    }
  });

  test("a method outside that list, should a newer Bun pass one, is the guard's JSON 501 (never forwarded)", () => {
    const guard = compileGuard(z.strictObject(GuardShape).parse({}));
    // Not `new Request(…, { method })`: Bun turns BREW into GET there (and fetch sends it as GET).
    for (const method of ["BREW", "UPDATE", "FOO-BAR", "patch", "delete"]) {
      const verdict = guard.inspect({ method, headers: new Headers({ host: "x" }) }, { authority: "x", path: "/", query: "" });
      expect(verdict).toMatchObject({ code: "method_not_implemented", status: 501, message: `${method} is not a method this proxy forwards` });
    }
    expect(guard.inspect(new Request("http://x/", { method: "PROPFIND", headers: { host: "x" } }), { authority: "x", path: "/", query: "" })).toBe("/");
  });
});
