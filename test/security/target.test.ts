/**
 * Target, Host, methods, upgrades and header names over raw TCP: what is refused, and that only
 * configured clusters are ever dialled.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

let app: ReturnType<typeof recordingUpstream>;
/** A server on loopback that no route points at: an absolute-form target or CONNECT naming it must not reach it. */
let bystander: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  app = recordingUpstream("app");
  bystander = recordingUpstream("bystander");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    routes: [
      { name: "shop", match: { hosts: ["shop.example"] }, to: "app" },
      { name: "ws", match: { path: { prefix: "/ws" } }, to: "app", websocket: true },
      { name: "by-header", match: { headers: [{ name: "x-tenant", exact: "a" }], path: { prefix: "/tenant" } }, to: "app" },
    ],
    clusters: { app: { endpoints: [app.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  app.stop(true);
  bystander.stop(true);
});

const send = (bytes: string) => rawRequest(proxy.port, bytes, { quietMs: 150 });
const json = (body: string) => JSON.parse(body) as { error: string; message: string; request_id: string };

describe("Host", () => {
  test("HTTP/1.1 without Host, two Hosts, Host with userinfo, an empty Host: 400, nothing forwarded", async () => {
    const before = app.seen.length;
    expect((await send("GET / HTTP/1.1\r\n\r\n")).status).toBe(400); // Bun's own refusal
    for (const hosts of ["Host: shop.example\r\nHost: evil.example", "Host: user@shop.example", "Host: user:pw@shop.example:80", "Host:", "Host: shop.example, evil.example"]) {
      const res = await send(`GET / HTTP/1.1\r\n${hosts}\r\n\r\n`);
      expect({ hosts, status: res.status }).toEqual({ hosts, status: 400 });
      expect(json(res.body).error).toBe("bad_request");
      expect(res.closed).toBe(true);
    }
    expect(app.seen.length).toBe(before);
  });

  test("HTTP/1.0 without Host is still served (it has none to give)", async () => {
    const res = await send("GET /tenant HTTP/1.0\r\nX-Tenant: a\r\n\r\n");
    expect(res.status).toBe(200);
  });
});

describe("the request target", () => {
  test("an absolute-form target is routed by Host to the route's cluster; the host it names is never dialled", async () => {
    const before = app.seen.length;
    const res = await send(`GET http://127.0.0.1:${bystander.port}/steal?x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n`);
    expect(res.status).toBe(200);
    expect(res.body).toBe("app");
    expect(app.seen.length).toBe(before + 1);
    expect(app.seen.at(-1)!.headers.host).toBe("shop.example");
    expect(app.seen.at(-1)!.url.pathname).toBe("/steal");
    // Without a Host, or with a Host no route serves, it is refused; either way the bystander sees nothing.
    expect((await send(`GET http://127.0.0.1:${bystander.port}/steal HTTP/1.1\r\n\r\n`)).status).toBe(400);
    expect((await send(`GET http://127.0.0.1:${bystander.port}/steal HTTP/1.1\r\nHost: 127.0.0.1:${bystander.port}\r\n\r\n`)).status).toBe(404);
    expect(bystander.seen).toHaveLength(0);
  });

  test("a fragment in the target is refused", async () => {
    const res = await send("GET /tenant#frag HTTP/1.1\r\nHost: x\r\nX-Tenant: a\r\n\r\n");
    expect(res.status).toBe(400);
    expect(json(res.body).error).toBe("invalid_path");
  });
});

describe("methods", () => {
  test("TRACE is refused with 405 and an Allow header", async () => {
    const before = app.seen.length;
    const res = await send("TRACE /tenant HTTP/1.1\r\nHost: shop.example\r\nCookie: sid=secret\r\n\r\n");
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    expect(json(res.body).error).toBe("method_not_allowed");
    expect(res.body).not.toContain("secret");
    expect(app.seen.length).toBe(before);
  });

  test("CONNECT is refused with 405: no tunnel is opened to the host it names", async () => {
    const res = await send(`CONNECT 127.0.0.1:${bystander.port} HTTP/1.1\r\nHost: 127.0.0.1:${bystander.port}\r\n\r\n`);
    expect(res.status).toBe(405);
    expect(json(res.body).error).toBe("method_not_allowed");
    expect(res.closed).toBe(true);
    expect(bystander.seen).toHaveLength(0);
  });
});

describe("Upgrade: h2c", () => {
  test("is never passed on: the request is served as plain HTTP/1.1, without Upgrade or HTTP2-Settings", async () => {
    for (const path of ["/tenant", "/ws"]) {
      const res = await send(`GET ${path} HTTP/1.1\r\nHost: x\r\nX-Tenant: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`);
      expect(res.status).toBe(200);
      const h = app.seen.at(-1)!.headers;
      expect(app.seen.at(-1)!.url.pathname).toBe(path);
      expect(h.upgrade).toBeUndefined();
      expect(h["http2-settings"]).toBeUndefined();
      expect(h.connection).not.toContain("pgrade");
    }
  });
});

describe("header names with underscores", () => {
  const request = "GET /tenant HTTP/1.1\r\nHost: x\r\nX-Tenant: a\r\nX_Auth_User: admin\r\nX-Plain: 1\r\n\r\n";

  test("dropped by default: neither routing nor the upstream sees them", async () => {
    const res = await send(request);
    expect(res.status).toBe(200);
    const h = app.seen.at(-1)!.headers;
    expect(h.x_auth_user).toBeUndefined();
    expect(h["x-plain"]).toBe("1");
    // A route that matches on such a header cannot be selected by it.
    const p = await startProxy({
      listeners: [{ address: "127.0.0.1", port: 0 }],
      routes: [{ match: { headers: [{ name: "x_role", present: true }] }, to: "app" }],
      clusters: { app: { endpoints: [app.origin] } },
    });
    try {
      expect((await rawRequest(p.port, "GET / HTTP/1.1\r\nHost: x\r\nX_Role: admin\r\n\r\n")).status).toBe(404);
    } finally {
      await p.stop();
    }
  });

  test("reject: 400; allow: passed on", async () => {
    for (const [policy, status] of [["reject", 400], ["allow", 200]] as const) {
      const p = await startProxy({
        listeners: [{ address: "127.0.0.1", port: 0, headers_with_underscores: policy }],
        routes: [{ to: "app" }],
        clusters: { app: { endpoints: [app.origin] } },
      });
      try {
        const res = await rawRequest(p.port, request);
        expect(res.status).toBe(status);
        if (policy === "reject") expect(json(res.body)).toMatchObject({ error: "invalid_header", message: expect.stringContaining("x_auth_user") });
        else expect(app.seen.at(-1)!.headers.x_auth_user).toBe("admin");
      } finally {
        await p.stop();
      }
    }
  });
});
