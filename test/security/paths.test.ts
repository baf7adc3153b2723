/**
 * Path normalization end to end: a route on /admin guarded by a header match cannot be reached by
 * an encoded variant, and the path the upstream receives is the one routing saw.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

/** The application: it serves public pages and, to whoever gets there, the admin pages. */
let app: ReturnType<typeof recordingUpstream>;
/** Stands in for a refusal: /admin without the key goes here (it answers "denied"). */
let deny: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

const routes = [
  { name: "admin", match: { path: { prefix: "/admin" }, headers: [{ name: "x-admin-key", exact: "s3cret" }] }, to: "app" },
  { name: "admin-denied", match: { path: { prefix: "/admin" } }, to: "deny" },
  { name: "public", match: { path: { prefix: "/" } }, to: "app" },
];

beforeAll(async () => {
  app = recordingUpstream("app");
  deny = recordingUpstream("denied");
  proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0 }],
    routes,
    clusters: { app: { endpoints: [app.origin] }, deny: { endpoints: [deny.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  app.stop(true);
  deny.stop(true);
});

/** How an ordinary origin server reads a path: decode once, `\` as `/`, resolve dots, merge slashes. */
function asTheAppReadsIt(pathname: string): string {
  const decoded = decodeURIComponent(pathname).replaceAll("\\", "/");
  return new URL(decoded.replace(/\/+/g, "/"), "http://x").pathname;
}

const get = (port: number, target: string, extra = "") => rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`, { quietMs: 100 });

const VARIANTS = [
  "/admin/users", "//admin/users", "/./admin/users", "/public/../admin/users", "/%61dmin/users", "/%61%64%6D%69%6E/users",
  "/public/%2e%2e/admin/users", "/public/.%2E/admin/users", "/%2561dmin/users", "/public/%252e%252e/admin/users",
  "/public%2f..%2fadmin/users", "/public%2F..%2Fadmin/users", "/admin%2fusers", "/public%5c..%5cadmin/users",
  "/public\\..\\admin\\users", "/\\admin/users", "/public/..;/admin/users", "/public//..//admin/users", "/%2e/admin/users",
];

describe("a header-guarded /admin route", () => {
  test("no encoded variant reaches the application as /admin without the key", async () => {
    for (const target of VARIANTS) {
      const seen = app.seen.length;
      const res = await get(proxy.port, target);
      // Refused, or normalized onto /admin and so sent to the denying route, or (`/public//..//admin`,
      // whose `..` only climbs out of the empty segment) a public page that is not an admin one.
      expect(res.status === 400 || res.status === 200).toBe(true);
      const reached = app.seen.slice(seen).map((s) => asTheAppReadsIt(s.url.pathname));
      expect({ target, reached: reached.filter((p) => p.startsWith("/admin")) }).toEqual({ target, reached: [] });
    }
  });

  test("variants that normalize to /admin go to the denying route as /admin/users; the rest are 400", async () => {
    const outcome = async (target: string) => {
      const before = deny.seen.length;
      const res = await get(proxy.port, target);
      return res.body === "denied" ? deny.seen.slice(before).map((s) => s.url.pathname)[0] : res.status;
    };
    expect(await outcome("//admin/users")).toBe("/admin/users");
    expect(await outcome("/%61dmin/users")).toBe("/admin/users");
    expect(await outcome("/public/%2e%2e/admin/users")).toBe("/admin/users");
    expect(await outcome("/public\\..\\admin\\users")).toBe("/admin/users");
    // Bun resolves dot segments first (`//..` climbs out of the empty segment), then slashes merge.
    expect(await outcome("/public//..//admin/users")).toBe(200);
    expect(await outcome("/public%2f..%2fadmin/users")).toBe(400);
    expect(await outcome("/public%5c..%5cadmin/users")).toBe(400);
    expect(await outcome("/%2561dmin/users")).toBe(400);
    expect(await outcome("/public/..;/admin/users")).toBe(400);
  });

  test("with the key, an encoded variant reaches the admin route, and the upstream gets the normalized path", async () => {
    const before = app.seen.length;
    const res = await get(proxy.port, "//%61dmin/./users/%7Ebob/x%20y?q=%2F", "X-Admin-Key: s3cret\r\n");
    expect(res.status).toBe(200);
    expect(app.seen.length).toBe(before + 1);
    const seen = app.seen.at(-1)!;
    expect(seen.url.pathname).toBe("/admin/users/~bob/x%20y");
    expect(seen.url.search).toBe("?q=%2F"); // the query is not the path's business
  });

  test("a refused path is a JSON 400 with the request id, logged with its code", async () => {
    const res = await get(proxy.port, "/public%2F..%2Fadmin");
    expect(res.status).toBe(400);
    const body = JSON.parse(res.body) as { error: string; message: string; request_id: string };
    expect(body.error).toBe("invalid_path");
    expect(body.message).toContain("%2F");
    expect(res.headers["x-request-id"]).toBe(body.request_id);
    expect(await proxy.logOf(body.request_id)).toMatchObject({ status: 400, error: "invalid_path", path: "/public%2F..%2Fadmin", route: null });
  });
});

describe("escaped slashes: keep and unescape", () => {
  test("unescape decodes %2F and %5C before routing: the variant lands on the denying route", async () => {
    const p = await startProxy({
      listeners: [{ address: "127.0.0.1", port: 0, path_normalization: { escaped_slashes: "unescape" } }],
      routes, clusters: { app: { endpoints: [app.origin] }, deny: { endpoints: [deny.origin] } },
    });
    try {
      const before = deny.seen.length;
      expect((await get(p.port, "/public%2F..%2Fadmin/users")).status).toBe(200);
      expect(deny.seen.slice(before).map((s) => s.url.pathname)).toEqual(["/admin/users"]);
    } finally {
      await p.stop();
    }
  });

  test("keep passes them on encoded (for upstreams that never decode them), and merge_slashes: false keeps //", async () => {
    const p = await startProxy({
      listeners: [{ address: "127.0.0.1", port: 0, path_normalization: { escaped_slashes: "keep", merge_slashes: false } }],
      routes: [{ to: "app" }], clusters: { app: { endpoints: [app.origin] } },
    });
    try {
      expect((await get(p.port, "/files/a%2fb//c")).status).toBe(200);
      expect(app.seen.at(-1)!.url.pathname).toBe("/files/a%2Fb//c");
    } finally {
      await p.stop();
    }
  });
});
