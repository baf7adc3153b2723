/**
 * The route-test tool against the real thing: for every rewrite kind the route schema has (path
 * prefix, path regex, a regex that adds query parameters, query set and remove, Host) and the
 * query parameter an auth filter takes off, the request is sent through the proxy to a real
 * upstream, and explain — the admin API's GET /route and `switchyard validate FILE --explain` —
 * is asked about the same URL. All three must say the same path, query and Host.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CLI, ROOT } from "../helpers/cli.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "explain-admin-token-0123456789";
const API_KEY = "k-live-0123456789";
const sha256 = (text: string) => new Bun.CryptoHasher("sha256").update(text).digest("hex");

/** What the upstream received: the request target exactly as it arrived (path and query), and Host. */
let received: { target: string; host: string | null }[] = [];
let up: Upstream;
let proxy: TestProxy;
let admin: string;

beforeAll(async () => {
  up = startUpstream((req) => {
    const url = req.url;
    received.push({ target: url.slice(url.indexOf("/", url.indexOf("://") + 3)), host: req.headers.get("host") });
    return new Response("ok");
  });
  proxy = await startProxy({
    admin: { address: "127.0.0.1", port: 0, token: TOKEN },
    auth: { keys: { type: "api_key", query: "api_key", keys: [{ name: "acme", sha256: sha256(API_KEY) }] } },
    routes: [
      // The issue's own example.
      { name: "orders", match: { path: { prefix: "/v2/orders" } }, rewrite: { path_prefix: "/orders", query: { set: { api_version: "2" }, remove: ["debug"] } }, to: "up" },
      { name: "prefix", match: { path: { prefix: "/p/" } }, rewrite: { path_prefix: "/" }, to: "up" },
      { name: "regex", match: { path: { prefix: "/shop/" } }, rewrite: { path_regex: { pattern: "^/shop/([a-z]+)/([0-9]+)$", substitution: "/items/$2" } }, to: "up" },
      { name: "regex-query", match: { path: { prefix: "/cat/" } }, rewrite: { path_regex: { pattern: "^/cat/([a-z]+)/([0-9]+)$", substitution: "/items/$2?cat=$1" } }, to: "up" },
      {
        name: "regex-and-query", match: { path: { prefix: "/both/" } },
        rewrite: { path_regex: { pattern: "^/both/([a-z]+)$", substitution: "/b?kind=$1" }, query: { set: { v: "3" }, remove: ["debug"] } }, to: "up",
      },
      { name: "set", match: { path: { prefix: "/set/" } }, rewrite: { query: { set: { a: "9", "new key": "x y" } } }, to: "up" },
      { name: "remove", match: { path: { prefix: "/remove/" } }, rewrite: { query: { remove: ["a", "debug"] } }, to: "up" },
      { name: "host", match: { path: { prefix: "/host/" } }, rewrite: { host: "orders.internal", path_prefix: "/h" }, to: "up" },
      { name: "host-rule", match: { path: { prefix: "/hrule/" } }, headers: { request: { set: { host: "rule.internal" } } }, to: "up" },
      { name: "keyed", match: { path: { prefix: "/keyed/" } }, filters: [{ type: "auth", providers: ["keys"] }], rewrite: { query: { set: { z: "1" } } }, to: "up" },
      { name: "plain", to: "up" },
    ],
    clusters: { up: { endpoints: [up.origin] } },
  });
  admin = proxy.running.admin!.url.origin;
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

interface Case {
  /** The request target sent (path and query). */
  target: string;
  /** Its Host; default api.example.com. */
  host?: string;
  headers?: Record<string, string>;
  /** What the upstream must receive. */
  upstreamPath: string;
  upstreamHost?: string;
}

const cases: [string, Case][] = [
  ["prefix + query set/remove (the issue's example)", { target: "/v2/orders/7?debug=1&x=2", upstreamPath: "/orders/7?x=2&api_version=2" }],
  ["prefix + query set on a request without a query", { target: "/v2/orders/7", upstreamPath: "/orders/7?api_version=2" }],
  ["prefix + query, on a path the guard normalizes", { target: "/v2/orders//%37?api_version=1&debug", upstreamPath: "/orders/7?api_version=2" }],
  ["prefix to /", { target: "/p/a/b?x=1", upstreamPath: "/a/b?x=1" }],
  ["regex", { target: "/shop/books/42?x=1", upstreamPath: "/items/42?x=1" }],
  ["regex that does not match: path kept", { target: "/shop/books/42/extra", upstreamPath: "/shop/books/42/extra" }],
  ["regex adding a query parameter; the client's follow", { target: "/cat/books/42?x=1&y", upstreamPath: "/items/42?cat=books&x=1&y" }],
  ["regex adding a query parameter, no client query", { target: "/cat/books/42", upstreamPath: "/items/42?cat=books" }],
  ["regex query + query rewrite (which works on the client's query only)", { target: "/both/red?debug=1&v=1&kind=blue", upstreamPath: "/b?kind=red&v=3&kind=blue" }],
  ["query set: replaces repeated values, adds new ones, re-encodes", { target: "/set/x?a=1&a=2&b=%20", upstreamPath: "/set/x?a=9&b=+&new+key=x+y" }],
  ["query remove: every value", { target: "/remove/x?a=1&keep=2&a=3&debug", upstreamPath: "/remove/x?keep=2" }],
  ["query remove leaving nothing: no ?", { target: "/remove/x?a=1", upstreamPath: "/remove/x" }],
  ["host rewrite", { target: "/host/x?y=1", upstreamPath: "/h/x?y=1", upstreamHost: "orders.internal" }],
  ["Host set by a request header rule", { target: "/hrule/x", upstreamPath: "/hrule/x", upstreamHost: "rule.internal" }],
  ["an API key in the query: taken off by the auth filter", { target: `/keyed/x?api_key=${API_KEY}&x=1`, upstreamPath: "/keyed/x?x=1&z=1" }],
  [
    "an API key in its header: the query parameter is taken off all the same",
    { target: "/keyed/x?api_key=other&x=1", headers: { "x-api-key": API_KEY }, upstreamPath: "/keyed/x?x=1&z=1" },
  ],
  ["no rewrite: the query exactly as sent", { target: "/any/path?b=2&a=1&a=3&e=%20x+y&k&t=%7e", upstreamPath: "/any/path?b=2&a=1&a=3&e=%20x+y&k&t=%7e" }],
  ["no rewrite, the Host kept (lower-cased, trailing dot dropped)", { target: "/%61ny", host: "API.Example.com.", upstreamPath: "/any", upstreamHost: "api.example.com" }],
];

interface Explained { route: string | null; upstream_path: string | null; upstream_host: string | null }

async function throughProxy(c: Case): Promise<{ target: string; host: string | null }> {
  received = [];
  const res = await fetch(`${proxy.origin}${c.target}`, { headers: { host: c.host ?? "api.example.com", ...c.headers } });
  expect(res.status).toBe(200);
  await res.text();
  expect(received).toHaveLength(1);
  return received[0]!;
}

async function fromAdmin(c: Case): Promise<Explained> {
  const query = new URLSearchParams({ method: "GET", url: `http://${c.host ?? "api.example.com"}${c.target}` });
  for (const [name, value] of Object.entries(c.headers ?? {})) query.append("header", `${name}:${value}`);
  const res = await fetch(`${admin}/route?${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as Explained;
}

async function fromCli(c: Case): Promise<Explained> {
  const p = Bun.spawn([process.execPath, CLI, "validate", proxy.configFile, "--explain", "GET", `http://${c.host ?? "api.example.com"}${c.target}`], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  expect(code).toBe(0);
  return JSON.parse(stdout.slice(stdout.indexOf("{"))) as Explained;
}

describe("explain and the upstream agree", () => {
  test.each(cases)("%s", async (_name, c) => {
    const seen = await throughProxy(c);
    const wantHost = c.upstreamHost ?? "api.example.com";
    expect(seen).toEqual({ target: c.upstreamPath, host: wantHost });
    const answers = [await fromAdmin(c), ...(c.headers === undefined ? [await fromCli(c)] : [])];
    for (const explained of answers) {
      expect({ path: explained.upstream_path, host: explained.upstream_host }).toEqual({ path: seen.target, host: seen.host });
    }
  });

  test("the CLI assumes the credential it cannot send is accepted: the key's parameter is shown taken off", async () => {
    const explained = await fromCli({ target: "/keyed/x?api_key=other&x=1", upstreamPath: "" });
    expect(explained.upstream_path).toBe("/keyed/x?x=1&z=1");
  });
});
