/** Custom route modules: the README's BFF example, the phases they share with config routes, their cluster client, load errors, reloads. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, validateConfig } from "../../src/config/load.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { buildRuntime } from "../../src/runtime/build.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const repo = join(import.meta.dir, "../..");
let users: Upstream;
let orders: Upstream;
let files: Upstream;
let saw: string[] = [];
let flaky = 0;
const big = "0123456789abcdef".repeat(20_000); // 320 KB

beforeAll(() => {
  users = startUpstream((req) => {
    const url = new URL(req.url);
    saw.push(`users ${url.pathname}`);
    if (url.pathname === "/users/404") return Response.json({ error: "nope" }, { status: 404 });
    return Response.json({ id: url.pathname.split("/")[2], name: "Ada Lovelace", avatar: "/a.png", internal: true });
  });
  orders = startUpstream((req) => {
    const url = new URL(req.url);
    saw.push(`orders ${url.pathname}${url.search}`);
    return Response.json({ items: [{ id: "o1", total: 12.5, status: "shipped", warehouse: "x" }, { id: "o2", total: 3, status: "open", warehouse: "y" }] });
  });
  files = startUpstream(async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/big") return new Response(big, { headers: { "content-type": "application/octet-stream" } });
    if (url.pathname === "/flaky") return flaky++ % 2 === 0 ? new Response("down", { status: 503 }) : Response.json({ second: true });
    if (url.pathname === "/echo") return Response.json({ upstream: await req.json(), forwardedFor: req.headers.get("x-forwarded-for") });
    return new Response(`path ${url.pathname}`);
  });
});
afterAll(() => {
  users.stop(true);
  orders.stop(true);
  files.stop(true);
});

type ErrorBody = { error: string; message: string; request_id: string };

describe("the BFF example (examples/modules/bff.ts)", () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await startProxy({
      modules: { dir: join(repo, "examples/modules") },
      routes: [{ name: "bff", match: { path: { prefix: "/bff" } }, module: "bff", filters: [{ type: "cors", allow_origins: ["https://app.example.com"] }] }],
      clusters: { users: { endpoints: [users.origin] }, orders: { endpoints: [orders.origin] } },
    });
  });
  afterAll(() => proxy.stop());

  test("one request, two cluster calls, the screen's data; calls in the access log line and metrics", async () => {
    saw = [];
    const res = await fetch(`${proxy.origin}/bff/home/42`, { headers: { origin: "https://app.example.com" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "Ada Lovelace", avatar: "/a.png", orders: [{ id: "o1", total: 12.5, status: "shipped" }, { id: "o2", total: 3, status: "open" }] });
    expect(saw.sort()).toEqual(["orders /orders?user=42&limit=3", "users /users/42"]);
    // The route's filters ran as on any route.
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    const line = await proxy.logOf(res.headers.get("x-request-id")!);
    expect(line).toMatchObject({ route: "bff", status: 200, path: "/bff/home/42" });
    const calls = line.calls as { call: string; cluster: string; status: number }[];
    expect(calls.map((c) => `${c.call} ${c.cluster} ${c.status}`).sort()).toEqual(["bff orders 200", "bff users 200"]);
    expect(metrics.requests.sum((l) => l[0] === "bff" && l[3] === "2xx")).toBeGreaterThanOrEqual(1);
    expect(metrics.subrequests.sum((l) => l[0] === "bff" && l[1] === "bff" && l[2] === "users")).toBeGreaterThanOrEqual(1);
  });

  test("an unknown user is the module's own 404; a path it does not serve is a JSON no_route", async () => {
    const res = await fetch(`${proxy.origin}/bff/home/404`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorBody).error).toBe("unknown_user");
    const none = await fetch(`${proxy.origin}/bff/nothing-here`);
    expect(none.status).toBe(404);
    expect(((await none.json()) as ErrorBody).error).toBe("no_route");
  });

  test("the optional cluster down: orders null; the required one down: its error is the answer (502)", async () => {
    proxy.writeConfig({
      listeners: [{ address: "127.0.0.1", port: proxy.port }],
      modules: { dir: join(repo, "examples/modules") },
      routes: [{ name: "bff", match: { path: { prefix: "/bff" } }, module: "bff" }],
      clusters: { users: { endpoints: [users.origin] }, orders: { endpoints: ["http://127.0.0.1:1"] } },
    });
    expect(await proxy.running.reload()).toBe(true);
    const partial = await fetch(`${proxy.origin}/bff/home/7`);
    expect(await partial.json()).toEqual({ name: "Ada Lovelace", avatar: "/a.png", orders: null });
    proxy.writeConfig({
      listeners: [{ address: "127.0.0.1", port: proxy.port }],
      modules: { dir: join(repo, "examples/modules") },
      routes: [{ name: "bff", match: { path: { prefix: "/bff" } }, module: "bff" }],
      clusters: { users: { endpoints: ["http://127.0.0.1:1"] }, orders: { endpoints: [orders.origin] } },
    });
    expect(await proxy.running.reload()).toBe(true);
    const down = await fetch(`${proxy.origin}/bff/home/7`);
    expect(down.status).toBe(502);
    const body = (await down.json()) as ErrorBody;
    expect(body.error).toBe("upstream_connect_refused");
    expect(body.request_id).toBe(down.headers.get("x-request-id")!);
  });
});

describe("a module's request, errors and cluster client", () => {
  let proxy: TestProxy;
  let errorsLogged: string[] = [];
  const originalError = console.error;
  beforeAll(async () => {
    console.error = (...args: unknown[]) => {
      errorsLogged.push(args.map(String).join(" "));
      originalError(...args);
    };
    proxy = await startProxy({
      modules: { dir: join(repo, "test/fixtures/modules") },
      routes: [
        {
          name: "lab", match: { path: { prefix: "/lab/" } }, module: "lab",
          timeouts: { request: "1s", idle: "5s" },
          retry: { attempts: 2, retry_on: ["5xx"], backoff: { base: "1ms", max: "1ms" } },
          filters: [{ type: "transform", request: [{ op: "set", path: "via", value: "gateway" }], response: [{ op: "remove", path: "secret" }] }],
        },
      ],
      clusters: { files: { endpoints: [files.origin] }, spare: { endpoints: [files.origin] } },
    });
  });
  afterAll(async () => {
    console.error = originalError;
    await proxy.stop();
  });

  test("a factory gets its context; the module sees the path without the route's prefix", async () => {
    const res = await fetch(`${proxy.origin}/lab/context?q=1`);
    expect(await res.json()).toEqual({ name: "lab", clusters: ["files", "spare"], requestId: res.headers.get("x-request-id"), path: "/context", query: "1" });
  });

  test("request and response filters apply to a module route (a transform here)", async () => {
    const res = await fetch(`${proxy.origin}/lab/echo`, { method: "POST", body: '{"a":1}', headers: { "content-type": "application/json" } });
    expect(await res.json()).toEqual({ got: { a: 1, via: "gateway" }, type: "application/json" });
    expect(await (await fetch(`${proxy.origin}/lab/json`)).json()).toEqual({ keep: 1 });
  });

  test("a module that throws: 500 module_error JSON, logged with the request id", async () => {
    errorsLogged = [];
    const res = await fetch(`${proxy.origin}/lab/throws`);
    expect(res.status).toBe(500);
    const body = (await res.json()) as ErrorBody;
    expect(body).toMatchObject({ error: "module_error", message: "the route module lab failed on this request" });
    expect(errorsLogged.some((l) => l.includes('"route module threw"') && l.includes("lab exploded") && l.includes(body.request_id))).toBe(true);
    expect((await proxy.logOf(body.request_id)).error).toBe("module_error");
  });

  test("a module that never answers gets the route's timeout (504)", async () => {
    const started = performance.now();
    const res = await fetch(`${proxy.origin}/lab/hangs`);
    expect(res.status).toBe(504);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  test("an upstream answer passed through streams intact", async () => {
    const res = await fetch(`${proxy.origin}/lab/stream`);
    expect(await res.text()).toBe(big);
    const line = await proxy.logOf(res.headers.get("x-request-id")!);
    expect((line.calls as { status: number }[])[0]!.status).toBe(200);
  });

  test("the cluster client retries by the route's policy, sends bodies, and refuses dot segments and unknown clusters", async () => {
    flaky = 0;
    const res = await fetch(`${proxy.origin}/lab/flaky`);
    expect(await res.json()).toEqual({ second: true });
    const line = await proxy.logOf(res.headers.get("x-request-id")!);
    expect((line.calls as { attempts: number }[])[0]!.attempts).toBe(2);
    const forwarded = await fetch(`${proxy.origin}/lab/forward`, { method: "POST" });
    expect(await forwarded.json()).toEqual({ upstream: { from: "module" }, forwardedFor: "127.0.0.1" });
    errorsLogged = [];
    expect((await fetch(`${proxy.origin}/lab/escape`)).status).toBe(500);
    expect(errorsLogged.some((l) => l.includes("cannot have . or .. segments"))).toBe(true);
    expect((await fetch(`${proxy.origin}/lab/nowhere`)).status).toBe(500);
    expect(errorsLogged.some((l) => l.includes('unknown cluster \\"no-such-cluster\\"'))).toBe(true);
  });
});

describe("loading", () => {
  const dir = tempDir();
  afterAll(() => dir.cleanup());
  const hono = JSON.stringify(join(repo, "node_modules/hono/dist/index.js"));
  const build = (module: string) =>
    buildRuntime(validateConfig("t.yaml", {
      listeners: [{ port: 8080 }], modules: { dir: dir.path },
      routes: [{ match: { path: { prefix: "/m" } }, module }], clusters: {},
    }), 1);

  test.each([
    ["throws", "throw new Error('no config for me'); export default 1;", /throws\.ts: 1 problem\n {2}the module failed to load: Error: no config for me/],
    ["nodefault", "export const x = 1;", /nodefault\.ts: 1 problem\n {2}the module must default-export a Hono app, or a function that returns one/],
    ["syntax", "export default {{;", /syntax\.ts: 1 problem\n {2}the module failed to load: /],
    ["factory", "export default () => { throw new Error('bad env'); };", /factory\.ts: 1 problem\n {2}the module's factory threw: Error: bad env/],
  ])("a module that fails at load (%s) is a config error naming its file", (name, source, message) => {
    const file = join(dir.path, `${name}.ts`);
    writeFileSync(file, source);
    try {
      expect(() => build(name)).toThrow(message);
      expect(() => build(name)).toThrow(ConfigError);
    } finally {
      writeFileSync(file, `import { Hono } from ${hono};\nexport default new Hono();\n`);
    }
  });

  test("a route naming a module that is not there, or without modules.dir, is refused with its path", () => {
    expect(() => build("ghost")).toThrow(/routes\[0\]\.module: unknown module "ghost" \(found in /);
    expect(() => validateConfig("t.yaml", { listeners: [{ port: 8080 }], routes: [{ module: "x" }] })).toThrow(/routes\[0\]\.module: needs modules\.dir/);
    expect(() => validateConfig("t.yaml", { listeners: [{ port: 8080 }], modules: { dir: "." }, routes: [{ module: "x", cache: { name: "c" } }] })).toThrow(/routes\[0\]\.cache: not available on a module route/);
  });

  test("`switchyard validate` loads the modules too, and names a broken one", async () => {
    const own = tempDir();
    writeFileSync(join(own.path, "broken.ts"), "throw new Error('missing API_KEY');");
    const configFile = join(own.path, "c.json");
    writeFileSync(configFile, JSON.stringify({ listeners: [{ port: 8080 }], modules: { dir: own.path }, routes: [{ module: "broken" }] }));
    const proc = Bun.spawn([process.execPath, join(repo, "src/cli.ts"), "validate", configFile], { stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    own.cleanup();
    expect(code).toBe(1);
    expect(stderr).toContain(`${join(own.path, "broken.ts")}: 1 problem\n  the module failed to load: Error: missing API_KEY`);
  });

  test("a reload loads the edited module; a broken edit is refused and the last good one keeps serving", async () => {
    const own = tempDir();
    const file = join(own.path, "live.ts");
    const version = (v: string) => `import { Hono } from ${hono};\nconst app = new Hono();\napp.get("/v", (c) => c.text(${JSON.stringify(v)}));\nexport default app;\n`;
    writeFileSync(file, version("one"));
    const config = { modules: { dir: own.path }, routes: [{ match: { path: { prefix: "/live" } }, module: "live" }], clusters: {} };
    const proxy = await startProxy(config);
    try {
      expect(await (await fetch(`${proxy.origin}/live/v`)).text()).toBe("one");
      writeFileSync(file, version("two"));
      expect(await proxy.running.reload()).toBe(true);
      expect(await (await fetch(`${proxy.origin}/live/v`)).text()).toBe("two");
      writeFileSync(file, "throw new Error('half-written');");
      expect(await proxy.running.reload()).toBe(false);
      expect(await (await fetch(`${proxy.origin}/live/v`)).text()).toBe("two");
      writeFileSync(file, version("three")); // a module that failed to load is read afresh once fixed
      expect(await proxy.running.reload()).toBe(true);
      expect(await (await fetch(`${proxy.origin}/live/v`)).text()).toBe("three");
    } finally {
      await proxy.stop();
      own.cleanup();
    }
  });
});
