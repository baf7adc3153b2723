/** Path normalization, pure: every rule on its own, with the exact outcome. */
import { describe, expect, test } from "bun:test";
import { needsNormalization, normalizePath, PathProblem } from "../../src/security/path.ts";
import type { PathNormalization } from "../../src/security/schema.ts";

const DEFAULTS: PathNormalization = { merge_slashes: true, escaped_slashes: "reject", double_encoding: "reject" };

function norm(path: string, options: Partial<PathNormalization> = {}): string {
  const out = normalizePath(path, { ...DEFAULTS, ...options });
  return out instanceof PathProblem ? `problem: ${out.reason}` : out;
}

describe("path normalization", () => {
  test("a clean path needs no work; anything with %, \\, // or /. does", () => {
    for (const clean of ["/", "/api/v1/items/12", "/a-b_c~d", "/file.txt", "/a.b/c"]) expect(needsNormalization(clean)).toBe(false);
    for (const dirty of ["/a%20b", "/a\\b", "//a", "/a//b", "/./a", "/a/..", "/.well-known/x", "/a/..;/b"]) expect(needsNormalization(dirty)).toBe(true);
  });

  test("dot segments are removed (RFC 3986 §5.2.4), never above the root", () => {
    expect(norm("/a/b/../c")).toBe("/a/c");
    expect(norm("/a/./b")).toBe("/a/b");
    expect(norm("/../../etc/passwd")).toBe("/etc/passwd");
    expect(norm("/a/b/..")).toBe("/a/");
    expect(norm("/a/.")).toBe("/a/");
    expect(norm("/..")).toBe("/");
    expect(norm("/.well-known/acme")).toBe("/.well-known/acme");
  });

  test("encoded unreserved characters are decoded, so %2e%2e is a dot segment and %61dmin is admin", () => {
    expect(norm("/%61dmin")).toBe("/admin");
    expect(norm("/a/%2e%2e/admin")).toBe("/admin");
    expect(norm("/a/.%2E/admin")).toBe("/admin");
    expect(norm("/%7Euser/%2D%5F")).toBe("/~user/-_");
  });

  test("other encodings stay encoded, upper-cased (§6.2.2.1)", () => {
    expect(norm("/a%20b/%3f%23")).toBe("/a%20b/%3F%23");
    expect(norm("/caf%c3%a9")).toBe("/caf%C3%A9");
  });

  test("slashes are merged by default, kept when merge_slashes is off", () => {
    expect(norm("//admin//users/")).toBe("/admin/users/");
    expect(norm("/a//../b")).toBe("/b");
    expect(norm("//admin//users/", { merge_slashes: false })).toBe("//admin//users/");
  });

  test("escaped slashes and backslashes: reject (default), keep or unescape", () => {
    for (const p of ["/a%2fb", "/a%2Fb", "/a%5cb", "/a%5C..%5Cadmin"]) expect(norm(p)).toBe("problem: the path has an escaped slash or backslash (%2F, %5C)");
    expect(norm("/a%2fb/%5c", { escaped_slashes: "keep" })).toBe("/a%2Fb/%5C");
    expect(norm("/public%2F..%2Fadmin", { escaped_slashes: "keep" })).toBe("/public%2F..%2Fadmin");
    expect(norm("/public%2f..%2fadmin", { escaped_slashes: "unescape" })).toBe("/admin");
    expect(norm("/public%5c..%5cadmin", { escaped_slashes: "unescape" })).toBe("/admin");
  });

  test("a raw backslash reads as a slash (as Bun reads it before us)", () => {
    expect(norm("/public\\..\\admin")).toBe("/admin");
    expect(norm("/\\admin")).toBe("/admin");
  });

  test("double encoding is refused by default, or kept encoded", () => {
    expect(norm("/a/%252e%252e/admin")).toBe("problem: the path is percent-encoded twice (%25 followed by hex digits)");
    expect(norm("/%2561dmin")).toStartWith("problem: the path is percent-encoded twice");
    expect(norm("/a/%252e%252e/admin", { double_encoding: "keep" })).toBe("/a/%252e%252e/admin");
    // A literal percent sign that does not start another encoding is just data.
    expect(norm("/save/100%25")).toBe("/save/100%25");
    expect(norm("/save/100%25off")).toBe("/save/100%25off");
  });

  test("malformed encodings, an encoded NUL and dot segments with parameters are refused", () => {
    expect(norm("/a%zz")).toBe("problem: the path has a malformed percent-encoding");
    expect(norm("/a%2")).toBe("problem: the path has a malformed percent-encoding");
    expect(norm("/a%00b")).toBe("problem: the path has an encoded NUL (%00)");
    expect(norm("/public/..;/admin")).toBe("problem: the path has a dot segment with parameters (..;)");
    expect(norm("/public/.;x/admin")).toStartWith("problem:");
    expect(norm("/admin;jsessionid=1/x")).toBe("/admin;jsessionid=1/x");
  });
});
