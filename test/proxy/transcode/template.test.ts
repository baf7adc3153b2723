/** google.api.http path templates: syntax, matching, decoding. Pure. */
import { describe, expect, test } from "bun:test";
import { compileTemplate } from "../../../src/proxy/transcode/template.ts";

describe("path templates", () => {
  test("literals, variables, nested field paths", () => {
    const t = compileTemplate("/v1/users/{user.id}/posts/{post}");
    expect(t.variables).toEqual(["user.id", "post"]);
    expect(t.match("/v1/users/7/posts/9")).toEqual({ "user.id": "7", post: "9" });
    expect(t.match("/v1/users/7/posts")).toBeUndefined();
    expect(t.match("/v1/users/7/posts/9/extra")).toBeUndefined();
    expect(t.match("/v1/users//posts/9")).toBeUndefined(); // a variable is at least one character
  });

  test("single-segment values are fully decoded; multi-segment ones keep %2F", () => {
    expect(compileTemplate("/a/{x}").match("/a/b%2Fc%20d")).toEqual({ x: "b/c d" });
    const t = compileTemplate("/v1/{name=shelves/*/books/*}");
    expect(t.match("/v1/shelves/s1/books/b%2F2")).toEqual({ name: "shelves/s1/books/b%2F2" });
    expect(t.match("/v1/shelves/s1")).toBeUndefined();
    expect(compileTemplate("/files/{path=**}").match("/files/a/b/c.txt")).toEqual({ path: "a/b/c.txt" });
  });

  test("wildcards without variables, and a custom verb", () => {
    const t = compileTemplate("/v1/*/items/**:batchGet");
    expect(t.variables).toEqual([]);
    expect(t.match("/v1/x/items/a/b:batchGet")).toEqual({});
    expect(t.match("/v1/x/items/a/b")).toBeUndefined();
    const v = compileTemplate("/v1/{name}:cancel");
    expect(v.match("/v1/op-1:cancel")).toEqual({ name: "op-1" });
    expect(v.match("/v1/op-1")).toBeUndefined();
  });

  test("regex metacharacters in literals are literal", () => {
    const t = compileTemplate("/v1/a.b+c");
    expect(t.match("/v1/a.b+c")).toEqual({});
    expect(t.match("/v1/aXbbc")).toBeUndefined();
  });

  test("a malformed escape in the path throws (the caller answers 400)", () => {
    expect(() => compileTemplate("/a/{x}").match("/a/%zz")).toThrow(URIError);
  });

  test.each([
    ["v1/x", 'a path template starts with "/": v1/x'],
    ["/v1//x", "empty path segment in /v1//x"],
    ["/v1/{x", "unbalanced braces in /v1/{x"],
    ["/v1/{a={b}}", "unbalanced braces in /v1/{a={b}}"],
    ["/v1/{1x}", '"1x" is not a field path (e.g. name or user.id) in /v1/{1x}'],
    ["/v1/**/x", '"**" must be the last segment in /v1/**/x'],
    ["/v1/{a}/{a}", "field a is bound twice in /v1/{a}/{a}"],
    ["/v1/a b", '"a b" is not a valid path segment in /v1/a b'],
    ["/v1/x:", '"" is not a valid verb in /v1/x:'],
  ])("%s is refused", (source, message) => {
    expect(() => compileTemplate(source)).toThrow(message);
  });
});
