/** The router is pure: compiled predicates and rewrites, tested without sockets. */
import { describe, expect, test } from "bun:test";
import { RouteSchema } from "../../src/proxy/route-schema.ts";
import { compileMatch, compileRewrite, matchRoute, type RequestFacts } from "../../src/proxy/router.ts";

function facts(over: Partial<Omit<RequestFacts, "headers">> & { headers?: Record<string, string> } = {}): RequestFacts {
  return { method: "GET", host: "example.com", path: "/", query: "", ...over, headers: new Headers(over.headers ?? {}) };
}

function route(raw: Record<string, unknown>) {
  const config = RouteSchema.parse({ to: "c", ...raw });
  return { name: config.name, test: compileMatch(config.match), rewrite: compileRewrite(config) };
}

describe("matching", () => {
  test("host: exact and wildcard, case already lowered, port ignored unless the pattern has one", () => {
    const r = route({ match: { hosts: ["Example.com", "*.apps.test", "local:8080"] } });
    const q = () => new URLSearchParams();
    expect(r.test(facts({ host: "example.com" }), q)).toBe(true);
    expect(r.test(facts({ host: "example.com:443" }), q)).toBe(true);
    expect(r.test(facts({ host: "a.apps.test" }), q)).toBe(true);
    expect(r.test(facts({ host: "a.b.apps.test:80" }), q)).toBe(true);
    expect(r.test(facts({ host: "apps.test" }), q)).toBe(false); // the wildcard needs a label
    expect(r.test(facts({ host: "evilapps.test" }), q)).toBe(false);
    expect(r.test(facts({ host: "local:8080" }), q)).toBe(true);
    expect(r.test(facts({ host: "local:9090" }), q)).toBe(false);
    expect(r.test(facts({ host: "[::1]:8080" }), q)).toBe(false);
  });

  test("all conditions must hold", () => {
    const r = route({ match: { methods: ["POST"], path: { prefix: "/api" }, headers: [{ name: "x-a", exact: "1" }], query: [{ name: "v", present: true }] } });
    const q = (s: string) => () => new URLSearchParams(s);
    const ok = facts({ method: "POST", path: "/api/x", headers: { "x-a": "1" }, query: "v=" });
    expect(r.test(ok, q("v="))).toBe(true);
    expect(r.test({ ...ok, method: "GET" }, q("v="))).toBe(false);
    expect(r.test(ok, q("w=1"))).toBe(false);
    expect(r.test(facts({ method: "POST", path: "/api/x", query: "v=" }), q("v="))).toBe(false);
  });

  test("first match wins; the query string is parsed only if a route asks, and at most once", () => {
    const routes = [route({ name: "a", match: { path: { exact: "/a" } } }), route({ name: "q", match: { query: [{ name: "x", exact: "1" }] } }), route({ name: "all" })];
    expect(matchRoute(routes, facts({ path: "/a", query: "x=1" }))?.name).toBe("a");
    expect(matchRoute(routes, facts({ path: "/b", query: "x=1" }))?.name).toBe("q");
    expect(matchRoute(routes, facts({ path: "/b", query: "x=2" }))?.name).toBe("all");
    expect(matchRoute([routes[0]!], facts({ path: "/b" }))).toBeUndefined();
  });

  test("regex paths are tested against the path only", () => {
    const r = route({ match: { path: { regex: "^/v[0-9]+/items$" } } });
    const q = () => new URLSearchParams();
    expect(r.test(facts({ path: "/v2/items" }), q)).toBe(true);
    expect(r.test(facts({ path: "/v2/items/1" }), q)).toBe(false);
  });
});

describe("rewrites", () => {
  test("prefix rewrite joins without doubled or missing slashes", () => {
    const cases: [string, string, string, string][] = [
      ["/api/", "/", "/api/users", "/users"],
      ["/api", "/v1", "/api/users", "/v1/users"],
      ["/api", "/v1", "/api", "/v1"],
      ["/api/", "/v1", "/api/users", "/v1/users"],
      ["/api", "/", "/api", "/"],
      ["/api", "/", "/api/x", "/x"],
    ];
    for (const [prefix, to, path, want] of cases) {
      const r = route({ match: { path: { prefix } }, rewrite: { path_prefix: to } });
      expect(r.rewrite!(path)).toBe(want);
    }
  });

  test("regex substitution with groups; the result always starts with /", () => {
    const r = route({ match: { path: { prefix: "/" } }, rewrite: { path_regex: { pattern: "^/old/(.*)$", substitution: "new/$1" } } });
    expect(r.rewrite!("/old/a/b")).toBe("/new/a/b");
    expect(r.rewrite!("/other")).toBe("/other");
  });
});
