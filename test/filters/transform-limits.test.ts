/**
 * The transform filter at its limits: nesting depth (max_depth) and size (max_body), one below,
 * at and one above each, in both directions, with and without strict_request / strict_response.
 * A body the operations cannot map is never passed on as if they had applied: a too-deep JSON
 * body is refused in every mode; a too-large one is refused in strict mode, and in lax mode passes
 * untouched, said so in the access log.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { slowBody, startUpstream, type Upstream } from "../helpers/upstream.ts";

const MAX_BODY = 1024;
const DEFAULT_DEPTH = 128;
const SHALLOW = 8;

/** A JSON document nesting exactly `depth` levels (the outer object is 1) with a secret and a forged tenant. */
function nested(depth: number): string {
  return `{"secret":"s3cr3t","tenant":"evil","n":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
}

/** A JSON document of exactly `size` bytes with a secret and a forged tenant. */
function sized(size: number): string {
  const head = '{"secret":"s3cr3t","tenant":"evil","pad":"';
  const tail = '"}';
  return head + "x".repeat(size - head.length - tail.length) + tail;
}

/** What the upstream got (request direction). */
let got: string[] = [];
let up: Upstream;
let proxy: TestProxy;

beforeAll(async () => {
  up = startUpstream(async (req) => {
    const url = new URL(req.url);
    const json = { "content-type": "application/json" };
    if (req.method === "POST") {
      got.push(await req.text());
      return new Response("{}", { headers: json });
    }
    if (url.pathname.endsWith("/invalid")) return new Response('{"secret": oops', { headers: json });
    const n = Number(url.searchParams.get("n"));
    const body = url.pathname.endsWith("/depth") ? nested(n) : sized(n);
    // Unsized: chunked, in two pieces.
    if (url.searchParams.has("chunked")) return new Response(slowBody([body.slice(0, 10), body.slice(10)], 2), { headers: json });
    if (url.pathname.endsWith("/text")) return new Response(body, { headers: { "content-type": "text/plain" } });
    return new Response(body, { headers: json });
  });
  const ops = {
    type: "transform" as const,
    max_body: `${MAX_BODY}B`,
    request: [{ op: "remove" as const, path: "secret" }, { op: "set" as const, path: "tenant", header: "x-tenant" }],
    response: [{ op: "remove" as const, path: "secret" }],
  };
  proxy = await startProxy({
    routes: [
      { name: "lax", match: { path: { prefix: "/lax/" } }, to: "up", filters: [ops] },
      { name: "roomy", match: { path: { prefix: "/roomy/" } }, to: "up", filters: [{ ...ops, max_body: "1MiB" }] },
      { name: "strict", match: { path: { prefix: "/strict/" } }, to: "up", filters: [{ ...ops, strict_request: true, strict_response: true }] },
      { name: "shallow", match: { path: { prefix: "/shallow/" } }, to: "up", filters: [{ ...ops, max_depth: SHALLOW }] },
      { name: "shallow-strict", match: { path: { prefix: "/shallow-strict/" } }, to: "up", filters: [{ ...ops, max_depth: SHALLOW, strict_request: true, strict_response: true }] },
    ],
    clusters: { up: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

const post = (path: string, body: RequestInit["body"]) =>
  fetch(`${proxy.origin}${path}`, { method: "POST", body, headers: { "content-type": "application/json", "x-tenant": "acme" } });

/** A proxy-made error: the status, and the JSON body every proxy error has. */
async function expectError(res: Response, status: number, error: string, message: RegExp): Promise<void> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/json");
  const body = (await res.json()) as { error: string; message: string; request_id: string };
  expect(body.error).toBe(error);
  expect(body.message).toMatch(message);
  expect(body.request_id).toBe(res.headers.get("x-request-id")!);
}

/** The mapped document: no secret, the tenant from the verified header. */
const mapped = (text: string) => {
  const doc = JSON.parse(text) as Record<string, unknown>;
  return { secret: doc.secret, tenant: doc.tenant };
};

const modes = [["lax", false], ["strict", true]] as const;

describe("nesting depth", () => {
  for (const [prefix, limit] of [["", DEFAULT_DEPTH], ["shallow", SHALLOW]] as const) {
    for (const [mode] of modes) {
      const route = prefix === "" ? mode : mode === "lax" ? "shallow" : "shallow-strict";
      test(`${route}: request bodies ${limit - 1} and ${limit} deep are mapped, ${limit + 1} is refused with 400`, async () => {
        got = [];
        for (const depth of [limit - 1, limit]) {
          const res = await post(`/${route}/in`, nested(depth));
          expect(res.status).toBe(200);
          await res.text();
        }
        expect(got.map(mapped)).toEqual([{ secret: undefined, tenant: "acme" }, { secret: undefined, tenant: "acme" }]);
        // Valid JSON: said to be too deep, never "not valid JSON"; nothing reaches the upstream.
        await expectError(await post(`/${route}/in`, nested(limit + 1)), 400, "json_too_deep", new RegExp(`nests deeper than ${limit} levels`));
        await expectError(await post(`/${route}/in`, slowBody([nested(limit + 1)], 1)), 400, "json_too_deep", new RegExp(`nests deeper than ${limit} levels`));
        expect(got).toHaveLength(2);
      });

      test(`${route}: responses ${limit - 1} and ${limit} deep are mapped, ${limit + 1} is refused with 502`, async () => {
        for (const depth of [limit - 1, limit]) {
          for (const chunked of ["", "&chunked"]) {
            const res = await fetch(`${proxy.origin}/${route}/depth?n=${depth}${chunked}`);
            expect(res.status).toBe(200);
            expect(mapped(await res.text()).secret).toBeUndefined();
          }
        }
        for (const chunked of ["", "&chunked"]) {
          const res = await fetch(`${proxy.origin}/${route}/depth?n=${limit + 1}${chunked}`);
          await expectError(res, 502, "upstream_response_too_deep", new RegExp(`nests deeper than ${limit} levels`));
        }
      });
    }
  }

  test("hostile nesting (200,000 levels, within max_body) is refused at once, both ways; the proxy keeps serving", async () => {
    const deep = "[".repeat(200_000) + "]".repeat(200_000);
    let started = performance.now();
    await expectError(await post("/roomy/in", deep), 400, "json_too_deep", /nests deeper than 128 levels/);
    expect(performance.now() - started).toBeLessThan(300); // parsing and serialising it would take ~1 s
    started = performance.now();
    await expectError(await fetch(`${proxy.origin}/roomy/depth?n=200000`), 502, "upstream_response_too_deep", /nests deeper than 128 levels/);
    expect(performance.now() - started).toBeLessThan(300);
    expect((await fetch(`${proxy.origin}/roomy/depth?n=3`)).status).toBe(200);
  });
});

describe("body size", () => {
  for (const [mode, strict] of modes) {
    test(`${mode}: request bodies of ${MAX_BODY - 1} and ${MAX_BODY} bytes are mapped; ${MAX_BODY + 1}: ${strict ? "413" : "passed untouched, logged"}`, async () => {
      for (const unsized of [false, true]) {
        got = [];
        for (const size of [MAX_BODY - 1, MAX_BODY]) {
          const body = sized(size);
          expect(body.length).toBe(size);
          const res = await post(`/${mode}/in`, unsized ? slowBody([body.slice(0, 10), body.slice(10)], 1) : body);
          expect(res.status).toBe(200);
          await res.text();
        }
        expect(got.map(mapped)).toEqual([{ secret: undefined, tenant: "acme" }, { secret: undefined, tenant: "acme" }]);
        const over = sized(MAX_BODY + 1);
        const res = await post(`/${mode}/in`, unsized ? slowBody([over.slice(0, 10), over.slice(10)], 1) : over);
        if (strict) {
          await expectError(res, 413, "body_too_large", new RegExp(`larger than ${MAX_BODY} bytes`));
          expect(got).toHaveLength(2);
        } else {
          expect(res.status).toBe(200);
          await res.text();
          expect(got[2]).toBe(over);
          const line = await proxy.logOf(res.headers.get("x-request-id")!);
          expect(line.transform_skipped).toEqual({ request: "too_large" });
        }
      }
    });

    test(`${mode}: responses of ${MAX_BODY - 1} and ${MAX_BODY} bytes are mapped; ${MAX_BODY + 1}: ${strict ? "502" : "passed untouched, logged"}`, async () => {
      for (const chunked of ["", "&chunked"]) {
        for (const size of [MAX_BODY - 1, MAX_BODY]) {
          const res = await fetch(`${proxy.origin}/${mode}/size?n=${size}${chunked}`);
          expect(res.status).toBe(200);
          expect(mapped(await res.text()).secret).toBeUndefined();
        }
        const res = await fetch(`${proxy.origin}/${mode}/size?n=${MAX_BODY + 1}${chunked}`);
        if (strict) await expectError(res, 502, "upstream_response_too_large", new RegExp(`larger than ${MAX_BODY} bytes`));
        else {
          expect(res.status).toBe(200);
          expect(await res.text()).toBe(sized(MAX_BODY + 1));
          const line = await proxy.logOf(res.headers.get("x-request-id")!);
          expect(line.transform_skipped).toEqual({ response: "too_large" });
        }
      }
    });
  }
});

describe("strict options name what they refuse", () => {
  test("strict_request: invalid JSON is a 400 that says so", async () => {
    await expectError(await post("/strict/in", '{"tenant":"evil",'), 400, "bad_request", /not valid JSON/);
  });

  test("strict_response: an answer that is not JSON, or invalid JSON, is a 502; lax passes it and logs why", async () => {
    await expectError(await fetch(`${proxy.origin}/strict/text?n=100`), 502, "upstream_bad_response", /not JSON \(text\/plain\)/);
    await expectError(await fetch(`${proxy.origin}/strict/invalid`), 502, "upstream_bad_response", /not valid JSON/);
    const text = await fetch(`${proxy.origin}/lax/text?n=100`);
    expect(await text.text()).toBe(sized(100));
    expect((await proxy.logOf(text.headers.get("x-request-id")!)).transform_skipped).toEqual({ response: "not_json" });
    const invalid = await fetch(`${proxy.origin}/lax/invalid`);
    expect(await invalid.text()).toBe('{"secret": oops');
    expect((await proxy.logOf(invalid.headers.get("x-request-id")!)).transform_skipped).toEqual({ response: "invalid_json" });
  });

  test("a mapped request and response leave no transform_skipped in the log", async () => {
    const res = await fetch(`${proxy.origin}/lax/depth?n=2`);
    await res.text();
    expect((await proxy.logOf(res.headers.get("x-request-id")!)).transform_skipped).toBeUndefined();
  });

  test("max_depth is checked in the config", () => {
    const load = (depth: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nroutes: [{to: a, filters: [{type: transform, max_depth: ${depth}, request: [{op: remove, path: x}]}]}]\n`));
    expect(() => load("0")).toThrow(/routes\[0\]\.filters\[0\]\.max_depth/);
    expect(() => load("1001")).toThrow(/routes\[0\]\.filters\[0\]\.max_depth/);
    expect(() => load("64")).not.toThrow();
  });
});
