/** Composition routes: parallel calls with stages, templates, optional/required failures, encoding of values, cluster policies, logs. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { metrics } from "../../src/observe/metrics.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { waitFor } from "../helpers/tmp.ts";
import { type Gate, gate, startUpstream, type Upstream } from "../helpers/upstream.ts";

let users: Upstream;
let orders: Upstream;
let proxy: TestProxy;
/** Every request the upstreams saw: "METHOD path?query", in arrival order, with its time. */
let saw: { line: string; at: number; headers: Headers; body: string }[] = [];
let aborted: string[] = [];
let flaky = 0;

function record(req: Request, body: string): URL {
  const url = new URL(req.url);
  saw.push({ line: `${req.method} ${url.pathname}${url.search}`, at: performance.now(), headers: req.headers, body });
  return url;
}

/** Waits `ms` unless the request is aborted first (then noted). The delay is the scenario: a slow call. */
async function stall(req: Request, ms: number, name: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    req.signal.addEventListener("abort", () => {
      clearTimeout(t);
      aborted.push(name);
      resolve();
    });
  });
}

/** Where /slow-orders calls wait until the test opens it; one that is cancelled meanwhile is noted. */
let slowOrders: Gate = gate();

async function held(req: Request, name: string): Promise<void> {
  await new Promise<void>((resolve) => {
    void slowOrders.pass().then(resolve);
    req.signal.addEventListener("abort", () => {
      aborted.push(name);
      resolve();
    });
  });
}

beforeAll(async () => {
  users = startUpstream(async (req) => {
    const url = record(req, await req.text());
    const id = decodeURIComponent(url.pathname.split("/")[2] ?? "");
    if (id === "broken") return new Response("boom", { status: 500 });
    if (id === "slow") await stall(req, 2000, "users/slow");
    if (id === "textual") return new Response("not json");
    if (id === "huge") return Response.json({ pad: "x".repeat(5000) });
    if (id === "noid") return Response.json({ name: "nobody" });
    if (id === "crlf") return Response.json({ id: "7", name: "x\r\nx-injected: 1" });
    if (id === "wide") return Response.json({ id: "8", name: "Zoë €" });
    if (id === "flaky") return flaky++ % 2 === 0 ? new Response("down", { status: 503 }) : Response.json({ id: "f", name: "Flaky" });
    // Written by hand: a number no double holds exactly.
    const user = JSON.stringify({ id: id === "dots" ? "a/../../admin?x=1#f" : id, name: `User ${id}`, address: { city: "Lyon" } });
    return new Response(`${user.slice(0, -1)},"big":12345678901234567890123}`, { headers: { "content-type": "application/json" } });
  });
  orders = startUpstream(async (req) => {
    const url = record(req, await req.text());
    if (url.pathname === "/slow-orders") await held(req, "orders/slow");
    if (url.pathname === "/stats") return Response.json({ count: 3 });
    if (req.method === "POST") return Response.json({ created: JSON.parse(saw[saw.length - 1]!.body) }, { status: 201 });
    return Response.json({ user: url.searchParams.get("user"), items: [{ sku: "a" }, { sku: "b" }] });
  });
  const profile = {
    calls: {
      user: { cluster: "users", path: "/users/${params.id}", timeout: "1s" },
      orders: { cluster: "orders", path: "/orders?user=${calls.user.id}&limit=2", headers: { "x-for-user": "${calls.user.name}" } },
      recs: { cluster: "dead", path: "/recs", optional: true, timeout: "500ms" },
    },
    template: { user: "${calls.user}", city: "${calls.user.address.city}", orders: "${calls.orders.items}", recs: "${calls.recs}", greeting: "Hello ${calls.user.name}!", big: "${calls.user.big}" },
  };
  proxy = await startProxy({
    routes: [
      { name: "profile", match: { path: { regex: "^/profile/(?<id>[^/]+)$" } }, compose: profile },
      {
        name: "parallel", match: { path: { exact: "/parallel" } },
        compose: {
          calls: { a: { cluster: "orders", path: "/slow-orders?n=1" }, b: { cluster: "orders", path: "/slow-orders?n=2" } },
          template: { a: "${calls.a.user}", b: "${calls.b.items[1].sku}" },
        },
      },
      {
        name: "fails-fast", match: { path: { exact: "/fails-fast" } },
        compose: {
          calls: { slow: { cluster: "orders", path: "/slow-orders" }, broken: { cluster: "users", path: "/users/broken" }, after: { cluster: "orders", path: "/after/${calls.broken.id}" } },
          template: { x: "${calls.slow}" },
        },
      },
      {
        name: "lookup", match: { path: { exact: "/lookup" } },
        compose: {
          calls: {
            user: { cluster: "users", path: "/users/${query.id}", timeout: "200ms", max_body: "1KiB" },
            stats: { cluster: "orders", path: "/stats", optional: true },
          },
          template: { user: "${calls.user}", stats: "${calls.stats.count}" },
        },
      },
      {
        name: "optional-slow", match: { path: { exact: "/optional-slow" } },
        compose: {
          calls: { user: { cluster: "users", path: "/users/1" }, slow: { cluster: "users", path: "/users/slow", timeout: "150ms", optional: true } },
          template: { user: "${calls.user.name}", slow: "${calls.slow}" },
        },
      },
      {
        name: "create", match: { path: { exact: "/create" }, methods: ["POST"] },
        compose: {
          calls: {
            user: { cluster: "users", path: "/users/${header.x-user}" },
            order: { cluster: "orders", method: "POST", path: "/orders", body: { owner: "${calls.user.id}", label: "order of ${calls.user.name}", lines: ["${query.sku}"] } },
          },
          template: { order: "${calls.order.created}" },
          status: 201,
        },
      },
      {
        name: "wide-header", match: { path: { exact: "/wide-header" } },
        compose: { calls: { user: { cluster: "users", path: "/users/1", headers: { "x-v": "${query.v}" } } }, template: { u: "${calls.user.name}" } },
      },
      {
        name: "retried", match: { path: { exact: "/retried" } },
        retry: { attempts: 2, retry_on: ["5xx"], backoff: { base: "1ms", max: "1ms" } },
        compose: { calls: { u: { cluster: "users", path: "/users/flaky" } }, template: { u: "${calls.u.name}" } },
      },
      {
        name: "limited", match: { path: { exact: "/limited" } },
        compose: { calls: { u: { cluster: "tight", path: "/users/slow", timeout: "3s" } }, template: { u: "${calls.u}" } },
      },
    ],
    clusters: {
      users: { endpoints: [users.origin] },
      orders: { endpoints: [orders.origin] },
      dead: { endpoints: ["http://127.0.0.1:1"] },
      tight: { endpoints: [users.origin], limits: { max_requests: 1 } },
    },
  });
});
afterAll(async () => {
  await proxy.stop();
  users.stop(true);
  orders.stop(true);
});

const get = (path: string, init?: RequestInit) => fetch(`${proxy.origin}${path}`, init);
type ErrorBody = { error: string; message: string; request_id: string };

describe("composing", () => {
  test("calls fan out, a later stage reads an earlier answer, the template merges them; a failed optional call is null and partial", async () => {
    saw = [];
    const res = await get("/profile/42", { headers: { "accept-language": "fr", "x-not-forwarded": "1" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-switchyard-partial")).toBe("true");
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      user: { id: "42", name: "User 42", address: { city: "Lyon" }, big: 12345678901234567890123 }, city: "Lyon",
      orders: [{ sku: "a" }, { sku: "b" }], recs: null, greeting: "Hello User 42!", big: 12345678901234567890123, partial: true,
    });
    expect(text).toContain('"big":12345678901234567890123'); // digits kept exactly
    expect(res.headers.get("content-length")).toBe(String(text.length));
    const lines = saw.map((s) => s.line);
    expect(lines).toEqual(["GET /users/42", "GET /orders?user=42&limit=2"]);
    const ordersCall = saw[1]!;
    expect(ordersCall.headers.get("x-for-user")).toBe("User 42");
    expect(ordersCall.headers.get("accept-language")).toBe("fr");
    expect(ordersCall.headers.get("x-not-forwarded")).toBeNull();
    expect(ordersCall.headers.get("x-request-id")).toBe(res.headers.get("x-request-id"));
    expect(saw[0]!.at).toBeLessThanOrEqual(ordersCall.at);
  });

  test("the access log line lists every call; metrics count them", async () => {
    const res = await get("/profile/7");
    await res.arrayBuffer();
    const line = await proxy.logOf(res.headers.get("x-request-id")!);
    expect(line.route).toBe("profile");
    expect(line.status).toBe(200);
    const calls = line.calls as { call: string; cluster: string; status: number | null; error: string | null; attempts: number }[];
    expect(calls.map((c) => c.call).sort()).toEqual(["orders", "recs", "user"]);
    expect(calls.find((c) => c.call === "recs")).toMatchObject({ cluster: "dead", status: null, error: "upstream_connect_refused", attempts: 1 });
    expect(calls.find((c) => c.call === "orders")).toMatchObject({ cluster: "orders", status: 200, error: null });
    expect(metrics.subrequests.sum((l) => l[0] === "profile" && l[1] === "orders" && l[3] === "2xx")).toBeGreaterThanOrEqual(2);
    expect(metrics.subrequests.sum((l) => l[0] === "profile" && l[1] === "recs" && l[3] === "upstream_connect_refused")).toBeGreaterThanOrEqual(2);
  });

  test("independent calls run in parallel", async () => {
    slowOrders = gate();
    const res = get("/parallel");
    await slowOrders.arrived(2); // both calls at the upstream at once: neither waited for the other's answer
    slowOrders.open();
    expect(await (await res).json()).toEqual({ a: null, b: "b" });
  });

  test("a POST call gets a JSON body from its template; the composed status is the configured one", async () => {
    saw = [];
    const res = await get("/create?sku=z-9", { method: "POST", headers: { "x-user": "5" } });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ order: { owner: "5", label: "order of User 5", lines: ["z-9"] } });
    expect(saw[1]!.line).toBe("POST /orders");
    expect(saw[1]!.headers.get("content-type")).toBe("application/json");
  });

  test("a call retries by the route's policy; the log shows its tries", async () => {
    flaky = 0;
    const res = await get("/retried");
    expect(await res.json()).toEqual({ u: "Flaky" });
    const line = await proxy.logOf(res.headers.get("x-request-id")!);
    const [call] = line.calls as { attempts: number; tries: { status: number }[] }[];
    expect(call!.attempts).toBe(2);
    expect(call!.tries.map((t) => t.status)).toEqual([503, 200]);
  });
});

describe("failures", () => {
  test("a required call that fails fails the response with 502 naming it; dependents never run, others are cancelled", async () => {
    saw = [];
    aborted = [];
    slowOrders = gate(); // never opened: the slow call is answered only if it is waited for
    const started = performance.now();
    const res = await get("/fails-fast");
    expect(res.status).toBe(502);
    const body = (await res.json()) as ErrorBody;
    expect(body.error).toBe("compose_call_failed");
    expect(body.message).toBe("call broken failed: compose_call_status: call broken answered 500");
    expect(performance.now() - started).toBeLessThan(2500); // the slow call, held at the upstream, was not waited for
    expect(saw.some((s) => s.line.startsWith("GET /after"))).toBe(false);
    const line = await proxy.logOf(body.request_id);
    const calls = line.calls as { call: string; error: string | null }[];
    expect(calls.find((c) => c.call === "slow")?.error).toBe("compose_cancelled");
    await waitFor("the slow call cancelled at the upstream", () => aborted.includes("orders/slow"));
  });

  test("per-call timeouts: an optional slow call becomes null, a required one fails the response", async () => {
    const started = performance.now();
    const res = await get("/optional-slow");
    expect(await res.json()).toEqual({ user: "User 1", slow: null, partial: true });
    expect(performance.now() - started).toBeLessThan(1000);
    const required = await get("/lookup?id=slow");
    expect(required.status).toBe(502);
    expect(((await required.json()) as ErrorBody).message).toStartWith("call user failed: upstream_timeout");
  });

  test("answers that are not JSON, too large, or lack a value a later call needs fail the call", async () => {
    expect(((await (await get("/lookup?id=textual")).json()) as ErrorBody).message).toBe("call user failed: compose_call_invalid: the answer of call user is not JSON");
    expect(((await (await get("/lookup?id=huge")).json()) as ErrorBody).message).toBe("call user failed: compose_call_too_large: the answer of call user is over 1024 bytes");
    const res = await get("/profile/noid");
    expect(res.status).toBe(502);
    expect(((await res.json()) as ErrorBody).message).toBe("call orders failed: compose_missing_value: call orders needs ${calls.user.id}, which the answer of user does not have as a string or number");
  });

  test("a value a call needs from the request is missing: 400 naming it", async () => {
    const res = await get("/lookup");
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorBody).message).toBe("call user needs ${query.id}, which the request does not have");
  });

  test("the cluster's limits apply to calls: over max_requests the call is shed", async () => {
    const controller = new AbortController();
    const atUpstream = () => saw.filter((s) => s.line === "GET /users/slow").length;
    const before = atUpstream();
    const first = get("/limited", { signal: controller.signal }).catch(() => undefined);
    await waitFor("the first call at the upstream", () => atUpstream() > before);
    const second = await get("/limited");
    expect(second.status).toBe(502);
    expect(((await second.json()) as ErrorBody).message).toStartWith("call u failed: overloaded");
    controller.abort();
    await first;
  });

  test("a client that leaves cancels the calls in flight", async () => {
    aborted = [];
    slowOrders = gate(); // never opened: both calls stay in flight until cancelled
    const controller = new AbortController();
    const pending = get("/parallel", { signal: controller.signal }).catch(() => undefined);
    await slowOrders.arrived(2);
    controller.abort();
    await pending;
    await waitFor("both calls cancelled at the upstream", () => aborted.filter((a) => a === "orders/slow").length >= 2);
    expect(aborted.filter((a) => a === "orders/slow").length).toBe(2);
  });
});

describe("values substituted into calls", () => {
  test("are URL-encoded: no extra segment, query parameter or fragment", async () => {
    saw = [];
    await (await get(`/lookup?id=${encodeURIComponent("a/b?c=d#e&f")}`)).arrayBuffer();
    expect(saw[0]!.line).toBe("GET /users/a%2Fb%3Fc%3Dd%23e%26f");
    saw = [];
    await (await get("/profile/dots")).arrayBuffer();
    expect(saw[1]!.line).toBe("GET /orders?user=a%2F..%2F..%2Fadmin%3Fx%3D1%23f&limit=2");
  });

  test("a value that would be a . or .. segment is refused", async () => {
    saw = [];
    for (const id of ["..", ".", "%2e%2e"]) {
      const res = await get(`/lookup?id=${encodeURIComponent(id)}`);
      if (id === "%2e%2e") {
        // Its % is encoded: a plain segment named %2e%2e, not a dot segment.
        expect(res.status).toBe(200);
        continue;
      }
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorBody).message).toBe("a value in the path of call user makes a . or .. segment");
    }
    expect(saw.map((s) => s.line).filter((l) => l.startsWith("GET /users"))).toEqual(["GET /users/%252e%252e"]);
  });

  test("a path parameter is its decoded value, encoded once into the call's path", async () => {
    saw = [];
    const res = await get("/profile/Zo%C3%AB%20K");
    expect(res.status).toBe(200);
    expect(saw[0]!.line).toBe("GET /users/Zo%C3%AB%20K");
    expect(((await res.json()) as { user: { id: string } }).user.id).toBe("Zoë K");
  });

  test("a value a header cannot hold (beyond Latin-1) fails the call instead of crashing the request", async () => {
    const fromAnswer = await get("/profile/wide");
    expect(fromAnswer.status).toBe(502);
    expect(((await fromAnswer.json()) as ErrorBody).message).toContain("which the answer of user has with a character a header cannot hold");
    const fromRequest = await get("/create?sku=1", { method: "POST", headers: { "x-user": "1" } });
    expect(fromRequest.status).toBe(201);
    const wideQuery = await get(`/wide-header?v=${encodeURIComponent("€")}`);
    expect(wideQuery.status).toBe(400);
    expect(((await wideQuery.json()) as ErrorBody).message).toContain("call user needs ${query.v}, which the request has with a character a header cannot hold");
  });

  test("an answer's value with CR/LF cannot become a header: the call fails", async () => {
    const res = await get("/profile/crlf");
    expect(res.status).toBe(502);
    expect(((await res.json()) as ErrorBody).message).toContain("which the answer of user has with a character a header cannot hold");
  });
});

describe("config", () => {
  const load = (compose: string, extra = "") =>
    validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nroutes: [{name: r, ${extra}compose: ${compose}}]\n`));
  test("a valid composition loads", () => {
    expect(() => load(`{calls: {u: {cluster: a, path: "/u/\${query.id}"}, o: {cluster: a, path: "/o?u=\${calls.u.id}"}}, template: {u: "\${calls.u}"}}`)).not.toThrow();
  });
  test.each([
    [`{calls: {u: {cluster: b, path: /u}}, template: {}}`, /routes\[0\]\.compose\.calls\.u\.cluster: unknown cluster "b"/],
    [`{calls: {u: {cluster: a, path: "/u/\${calls.v.id}"}}, template: {}}`, /compose\.calls\.u\.path: \$\{calls\.v\.id\}: unknown call "v"/],
    [`{calls: {u: {cluster: a, path: "/\${calls.v.x}"}, v: {cluster: a, path: "/\${calls.u.x}"}}, template: {}}`, /calls depend on each other in a cycle: u → v → u/],
    [`{calls: {u: {cluster: a, path: /u, optional: true}, v: {cluster: a, path: "/\${calls.u.x}"}}, template: {}}`, /compose\.calls\.v: a required call cannot depend on the optional call "u"/],
    [`{calls: {u: {cluster: a, path: "/\${nope.x}"}}, template: {}}`, /starts with calls, query, header, claims, params/],
    [`{calls: {u: {cluster: a, path: /u, body: {a: 1}}}, template: {}}`, /compose\.calls\.u\.body: a GET call has no body/],
    [`{calls: {u: {cluster: a, path: /u}}, template: {partial: 1}}`, /partial is set by the gateway/],
    [`{calls: {u: {cluster: a, path: u}}, template: {}}`, /compose\.calls\.u\.path: must start with \//],
    [`{calls: {}, template: {}}`, /give at least one call/],
    [`{calls: {"1x": {cluster: a, path: /u}}, template: {}}`, /call names are letters/],
    [`{calls: {u: {cluster: a, path: "/u/\${query.id"}}, template: {}}`, /unclosed/],
  ])("%s", (compose, message) => expect(() => load(compose)).toThrow(message));
  test("a compose route takes no cluster and nothing of a single forward", () => {
    expect(() => load(`{calls: {u: {cluster: a, path: /u}}, template: {}}`, "to: a, ")).toThrow(/routes\[0\]\.to: give exactly one of to, weighted_clusters, compose or module/);
    expect(() => load(`{calls: {u: {cluster: a, path: /u}}, template: {}}`, "mirror: {cluster: a}, ")).toThrow(/routes\[0\]\.mirror: not available on a compose route/);
  });
});
