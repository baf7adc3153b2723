/** The guard's settings: defaults, and each kind of mistake refused with its path. */
import { expect, test } from "bun:test";
import { ConfigError, validateConfig } from "../../src/config/load.ts";

const withListener = (listener: Record<string, unknown>) => ({ listeners: [{ port: 8080, ...listener }], routes: [{ to: "c", max_request_body: "1MiB" }], clusters: { c: { endpoints: ["http://127.0.0.1:9000"] } } });

function problemsOf(raw: unknown): string[] {
  try {
    validateConfig("test.yaml", raw, {});
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

test("defaults: 16KiB of head, 100 fields, 8KiB of URL, underscores dropped, slashes merged, escaped slashes and double encoding refused, no trusted proxy", () => {
  const config = validateConfig("t.yaml", withListener({}), {});
  expect(config.listeners[0]).toMatchObject({
    max_header_bytes: 16 * 1024, max_headers: 100, max_url_length: 8 * 1024, headers_with_underscores: "drop",
    path_normalization: { merge_slashes: true, escaped_slashes: "reject", double_encoding: "reject" }, trusted_proxies: [],
  });
  expect(config.routes[0]!.max_request_body).toBe(1024 * 1024);
});

test("bad values are refused with their path", () => {
  expect(problemsOf(withListener({ trusted_proxies: ["10.0.0.0/33", "fd00::/129", "lb.internal", "10.0.0.0/8"] }))).toEqual([0, 1, 2].map(
    (i) => `listeners[0].trusted_proxies[${i}]: must be an IP address or a CIDR range like 10.0.0.0/8 or 2001:db8::/32`,
  ));
  const problems = problemsOf(withListener({ headers_with_underscores: "strip", path_normalization: { escaped_slashes: "decode", merge: true }, max_headers: 0, max_url_length: "lots" }));
  expect(problems).toHaveLength(5);
  expect(problems.join("\n")).toContain("listeners[0].headers_with_underscores:");
  expect(problems.join("\n")).toContain("listeners[0].path_normalization.escaped_slashes:");
  expect(problems.join("\n")).toContain('listeners[0].path_normalization: unknown key "merge"');
  expect(problems.join("\n")).toContain("listeners[0].max_headers:");
  expect(problems.join("\n")).toContain('listeners[0].max_url_length: "lots" is not a size');
});
