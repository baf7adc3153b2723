/**
 * A route chosen by Host and guarded by auth cannot be reached through another spelling of the
 * same host (a trailing dot, upper case, a port) that falls through to an open catch-all route:
 * routing, filters and the upstream's Host all see one canonical name.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { signingKey } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

/** One backend with virtual hosts: it serves the admin site to any request whose Host names it. */
let app: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  app = recordingUpstream("app");
  const key = await signingKey("k1");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    auth: { corp: { type: "jwt", keys: [{ jwk: key.publicJwk }] } },
    routes: [
      { name: "admin", match: { hosts: ["admin.example.com", "*.admin.example.net"] }, filters: [{ type: "auth", providers: ["corp"] }], to: "app" },
      { name: "public", match: { path: { prefix: "/" } }, to: "app" },
    ],
    clusters: { app: { endpoints: [app.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  app.stop(true);
});

const get = (host: string, target = "/users") => rawRequest(proxy.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, { quietMs: 100 });

test("a trailing dot, upper case or a port on the Host still gets the auth route's 401", async () => {
  const hosts = [
    "admin.example.com", "admin.example.com.", "ADMIN.Example.COM.", "admin.example.com.:80", "admin.example.com:8080",
    "admin.example.com..", "eu.admin.example.net.", "eu.admin.example.net.:443",
  ];
  for (const host of hosts) {
    const before = app.seen.length;
    const res = await get(host);
    expect({ host, status: res.status }).toEqual({ host, status: 401 });
    expect(app.seen.length).toBe(before);
  }
  // Absolute-form targets are routed by the Host header too.
  const res = await get("admin.example.com.", "http://admin.example.com./users");
  expect(res.status).toBe(401);
});

test("the upstream gets the canonical Host; other hosts still reach the catch-all", async () => {
  const res = await get("www.example.com.:8080");
  expect(res.status).toBe(200);
  expect(app.seen.at(-1)!.headers.host).toBe("www.example.com:8080");
  expect(app.seen.at(-1)!.headers["x-forwarded-host"]).toBe("www.example.com:8080");
  // A Host that is only dots has no name left: malformed.
  expect((await get(".")).status).toBe(400);
  expect((await get("..:80")).status).toBe(400);
});
