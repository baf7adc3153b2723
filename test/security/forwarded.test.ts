/**
 * Who the upstream is told asked: spoofed X-Forwarded-*, X-Request-Id and X-Forwarded-Client-Cert
 * from untrusted peers are replaced or removed, a trusted proxy's are kept, and a Connection header
 * cannot nominate away what the proxy states or relies on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const XFCC = "By=spiffe://mesh/ns/a/sa/b;Hash=abc;Subject=\"CN=admin\";URI=spiffe://mesh/ns/x/sa/root";

let app: ReturnType<typeof recordingUpstream>;
let open: TestProxy;
let behindLb: TestProxy;

const config = (listener: Record<string, unknown>) => ({
  listeners: [{ address: "127.0.0.1", port: 0, ...listener }],
  routes: [{ to: "app", headers: { request: { set: { "x-gateway": "switchyard" } } } }],
  clusters: { app: { endpoints: [app.origin] } },
});

beforeAll(async () => {
  app = recordingUpstream("app");
  open = await startProxy(config({}));
  behindLb = await startProxy(config({ trusted_proxies: ["127.0.0.1/32", "10.0.0.0/8"] }));
});
afterAll(async () => {
  await open.stop();
  await behindLb.stop();
  app.stop(true);
});

const spoofed = {
  "x-forwarded-for": "6.6.6.6",
  "x-forwarded-proto": "https",
  "x-forwarded-host": "bank.example",
  "x-request-id": "chosen-by-client",
  "x-forwarded-client-cert": XFCC,
};

describe("from an untrusted peer (no trusted_proxies, the default)", () => {
  test("X-Forwarded-For/-Proto/-Host and X-Request-Id are overwritten, X-Forwarded-Client-Cert removed", async () => {
    const res = await fetch(`${open.origin}/who`, { headers: { ...spoofed, host: "shop.example" } });
    await res.text();
    const h = app.seen.at(-1)!.headers;
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-forwarded-host"]).toBe("shop.example");
    expect(h["x-request-id"]).toMatch(UUID);
    expect(res.headers.get("x-request-id")).toBe(h["x-request-id"]!);
    expect(h["x-forwarded-client-cert"]).toBeUndefined();
    expect(await open.logOf(h["x-request-id"]!)).toMatchObject({ client_ip: "127.0.0.1" });
  });

  test("X-Original-URL, X-Rewrite-URL and X-Forwarded-Prefix are removed: a backend that honours them would serve another path than the one routed", async () => {
    const res = await fetch(`${open.origin}/public`, { headers: { "x-original-url": "/admin", "x-rewrite-url": "/admin", "x-forwarded-prefix": "//evil.example" } });
    await res.text();
    const h = app.seen.at(-1)!.headers;
    expect(app.seen.at(-1)!.url.pathname).toBe("/public");
    expect([h["x-original-url"], h["x-rewrite-url"], h["x-forwarded-prefix"]]).toEqual([undefined, undefined, undefined]);
  });

  test("method-override fields are removed: a POST must not act as the DELETE a method rule refused", async () => {
    const res = await fetch(`${open.origin}/items/7`, { method: "POST", body: "", headers: { "x-http-method-override": "DELETE", "x-http-method": "DELETE", "x-method-override": "DELETE" } });
    await res.text();
    const h = app.seen.at(-1)!.headers;
    expect([h["x-http-method-override"], h["x-http-method"], h["x-method-override"]]).toEqual([undefined, undefined, undefined]);
  });
});

describe("from a trusted proxy", () => {
  test("its values are kept, the chain is appended to, and the client IP is the first untrusted hop from the right", async () => {
    const res = await fetch(`${behindLb.origin}/who`, {
      headers: { ...spoofed, "x-forwarded-for": "6.6.6.6, 198.51.100.7, 10.0.0.5", "x-request-id": "lb-chosen-1" },
    });
    await res.text();
    const h = app.seen.at(-1)!.headers;
    expect(h["x-forwarded-for"]).toBe("6.6.6.6, 198.51.100.7, 10.0.0.5, 127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("https");
    expect(h["x-forwarded-host"]).toBe("bank.example");
    expect(h["x-request-id"]).toBe("lb-chosen-1");
    expect(h["x-forwarded-client-cert"]).toBe(XFCC);
    expect(await behindLb.logOf("lb-chosen-1")).toMatchObject({ client_ip: "198.51.100.7" });
    // A trusted proxy's rewrite headers are its own business.
    const kept = await fetch(`${behindLb.origin}/who`, { headers: { "x-original-url": "/who?x=1", "x-forwarded-prefix": "/api" } });
    await kept.text();
    expect(app.seen.at(-1)!.headers).toMatchObject({ "x-original-url": "/who?x=1", "x-forwarded-prefix": "/api" });
  });

  test("a malformed X-Forwarded-Proto or request id is still replaced", async () => {
    const res = await fetch(`${behindLb.origin}/who`, { headers: { "x-forwarded-proto": "gopher", "x-request-id": "has spaces <>" } });
    await res.text();
    const h = app.seen.at(-1)!.headers;
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-request-id"]).toMatch(UUID);
  });

  test("IPv6: a peer on ::1 is trusted only when a range covers it", async () => {
    for (const [trusted, expected] of [[["::1/128"], "2001:db8::7"], [["10.0.0.0/8"], "::1"]] as const) {
      const p = await startProxy({ ...config({ trusted_proxies: trusted }), listeners: [{ address: "::1", port: 0, trusted_proxies: [...trusted] }] });
      try {
        const res = await fetch(`http://[::1]:${p.port}/v6`, { headers: { "x-forwarded-for": "2001:db8::7" } });
        await res.text();
        expect(await p.logOf(res.headers.get("x-request-id")!)).toMatchObject({ client_ip: expected });
        expect(app.seen.at(-1)!.headers["x-forwarded-for"]).toBe(expected === "::1" ? "::1" : "2001:db8::7, ::1");
      } finally {
        await p.stop();
      }
    }
  });
});

describe("hop-by-hop abuse", () => {
  const NOMINATED = "x-forwarded-for, x-forwarded-proto, x-forwarded-host, x-request-id, authorization, cookie, traceparent, x-gateway, host, content-type, x-forwarded-client-cert, x-private";
  const request = (port: number) => rawRequest(port, [
    "POST /nominate HTTP/1.1", "Host: shop.example", `Connection: keep-alive, ${NOMINATED}`,
    "Authorization: Bearer t0ken", "Cookie: sid=1", "Content-Type: text/plain", "X-Private: gone",
    "X-Forwarded-For: 198.51.100.7", `X-Forwarded-Client-Cert: ${XFCC}`, "X-Request-Id: lb-nominated",
    "Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Content-Length: 2", "", "hi",
  ].join("\r\n"));

  test("Connection cannot strip what the proxy states or the upstream relies on (untrusted peer)", async () => {
    const res = await request(open.port);
    expect(res.status).toBe(200);
    const seen = app.seen.at(-1)!;
    const h = seen.headers;
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-forwarded-host"]).toBe("shop.example");
    expect(h["x-request-id"]).toMatch(UUID);
    expect(h.traceparent).toBe("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    expect(h.authorization).toBe("Bearer t0ken");
    expect(h.cookie).toBe("sid=1");
    expect(h["content-type"]).toBe("text/plain");
    expect(h.host).toBe("shop.example");
    expect(h["x-gateway"]).toBe("switchyard"); // a route's header rule is applied after the removal
    expect(h["x-forwarded-client-cert"]).toBeUndefined(); // untrusted: removed all the same
    expect(h["x-private"]).toBeUndefined(); // an ordinary nominated field is still removed (RFC 9110 §7.6.1)
    expect(seen.body).toBe("hi");
  });

  test("nor a trusted proxy's chain and client certificate", async () => {
    expect((await request(behindLb.port)).status).toBe(200);
    const h = app.seen.at(-1)!.headers;
    expect(h["x-forwarded-for"]).toBe("198.51.100.7, 127.0.0.1");
    expect(h["x-forwarded-client-cert"]).toBe(XFCC);
    expect(h["x-request-id"]).toBe("lb-nominated");
  });
});

describe("the fields an upstream request loses, each sent alone (the guard's pass decides whether there is anything to delete)", () => {
  // Framing fields (Transfer-Encoding, Content-Length) are the request guard's and Bun's business: not sent here.
  const alone: [string, string][] = [
    ["keep-alive", "timeout=5"], ["proxy-connection", "keep-alive"], ["te", "trailers"], ["trailer", "x-t"],
    ["upgrade", "h2c"], ["proxy-authorization", "Basic YTpi"], ["proxy-authenticate", "Basic"], ["http2-settings", "AAMAAABkAAQAoAAAAAIAAAAA"],
    ["forwarded", "for=6.6.6.6"], ["x-forwarded-port", "443"], ["x-forwarded-server", "evil"], ["x-real-ip", "6.6.6.6"],
    ["x-forwarded-client-cert", XFCC], ["x-original-url", "/admin"], ["x-rewrite-url", "/admin"], ["x-forwarded-prefix", "/evil"],
    ["x-http-method-override", "DELETE"], ["x-http-method", "DELETE"], ["x-method-override", "DELETE"],
  ];

  const check = async (proxy: TestProxy) => {
    for (const [name, value] of alone) {
      const res = await rawRequest(proxy.port, `GET /alone HTTP/1.1\r\nHost: shop.example\r\n${name}: ${value}\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(200);
      expect([name, app.seen.at(-1)!.headers[name]]).toEqual([name, undefined]);
    }
    // Nominated by Connection alone.
    await rawRequest(proxy.port, "GET /alone HTTP/1.1\r\nHost: shop.example\r\nConnection: x-secret, close\r\nx-secret: 1\r\n\r\n");
    expect(app.seen.at(-1)!.headers["x-secret"]).toBeUndefined();
    // And a plain request still gets what the proxy states.
    await rawRequest(proxy.port, "GET /alone HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n");
    expect(app.seen.at(-1)!.headers).toMatchObject({ "x-forwarded-for": "127.0.0.1", "x-forwarded-host": "shop.example", "x-gateway": "switchyard" });
  };

  test("with the default guard (one pass over the names)", async () => {
    await check(open);
  });

  test("with a guard that does not visit the names (underscores allowed, 16 KiB head limit)", async () => {
    const lookup = await startProxy(config({ headers_with_underscores: "allow", max_header_bytes: "16KiB" }));
    try {
      await check(lookup);
    } finally {
      await lookup.stop();
    }
  });
});
