/** Response compression: negotiation by q-values, the encodings, what is never compressed, streams flushed per event. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { brotliDecompressSync, gunzipSync, zstdDecompressSync } from "node:zlib";
import { negotiate } from "../../src/proxy/compress.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

describe("negotiation (RFC 9110 §12.5.3)", () => {
  const offered = ["br", "zstd", "gzip"] as const;
  test.each([
    ["gzip, br", "br"],
    ["gzip;q=1, br;q=0.5", "gzip"],
    ["zstd", "zstd"],
    ["*", "br"],
    ["*;q=0.1, gzip", "gzip"],
    ["identity", undefined],
    ["gzip;q=0", undefined],
    ["GZIP", "gzip"],
  ] as const)("%s → %s", (header, want) => {
    expect(negotiate(header, offered)).toBe(want);
  });
  test("no Accept-Encoding: as is", () => expect(negotiate(null, offered)).toBeUndefined());
});

let up: Upstream;
let proxy: TestProxy;
let releaseSecond: () => void = () => {};
const text = "compress me please ".repeat(600); // ~11 KiB
const big = "streamed body line\n".repeat(12_000); // ~230 KiB

beforeAll(async () => {
  up = startUpstream((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/text") return new Response(text, { headers: { "content-type": "text/plain; charset=utf-8", etag: '"abc"' } });
    if (path === "/small") return new Response("tiny", { headers: { "content-type": "text/plain" } });
    if (path === "/png") return new Response(new Uint8Array(5000), { headers: { "content-type": "image/png" } });
    if (path === "/encoded") return new Response(Bun.gzipSync(text), { headers: { "content-type": "text/plain", "content-encoding": "gzip" } });
    if (path === "/no-transform") return new Response(text, { headers: { "content-type": "text/plain", "cache-control": "no-transform" } });
    if (path === "/big") return new Response(big, { headers: { "content-type": "text/plain" } });
    if (path === "/sse") {
      const gate = new Promise<void>((r) => (releaseSecond = r));
      const enc = new TextEncoder();
      return new Response(new ReadableStream({
        async start(c) {
          c.enqueue(enc.encode(`data: ${"first ".repeat(50)}\n\n`));
          await gate;
          c.enqueue(enc.encode("data: second\n\n"));
          c.close();
        },
      }), { headers: { "content-type": "text/event-stream" } });
    }
    return new Response("?", { status: 404 });
  });
  proxy = await startProxy({ routes: [{ to: "u", compression: {} }], clusters: { u: { endpoints: [up.origin] } } });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
});

const raw = (path: string, accept?: string) => fetch(proxy.origin + path, { headers: accept ? { "accept-encoding": accept } : {}, decompress: false } as RequestInit);

test.each([
  ["gzip", (b: Uint8Array) => gunzipSync(b)],
  ["br", (b: Uint8Array) => brotliDecompressSync(b)],
  ["zstd", (b: Uint8Array) => zstdDecompressSync(b)],
] as const)("%s: the body is compressed, decodes to the original, Vary is set and a strong ETag weakened", async (algo, decode) => {
  const res = await raw("/text", algo);
  expect(res.headers.get("content-encoding")).toBe(algo);
  expect(res.headers.get("vary")).toContain("Accept-Encoding");
  expect(res.headers.get("etag")).toBe('W/"abc"');
  const body = new Uint8Array(await res.arrayBuffer());
  expect(body.byteLength).toBeLessThan(text.length / 5);
  expect(Number(res.headers.get("content-length"))).toBe(body.byteLength);
  expect(Buffer.from(decode(body)).toString()).toBe(text);
});

test("not compressed: no Accept-Encoding (but Vary is set), too small, not a listed type, already encoded, no-transform", async () => {
  const plain = await raw("/text");
  expect(plain.headers.get("content-encoding")).toBeNull();
  expect(plain.headers.get("vary")).toContain("Accept-Encoding");
  expect(await plain.text()).toBe(text);
  for (const path of ["/small", "/png", "/no-transform"]) expect((await raw(path, "gzip")).headers.get("content-encoding")).toBeNull();
  const encoded = await raw("/encoded", "br");
  expect(encoded.headers.get("content-encoding")).toBe("gzip"); // never twice, never re-encoded
  expect(Buffer.from(gunzipSync(new Uint8Array(await encoded.arrayBuffer()))).toString()).toBe(text);
});

test("a large body is compressed as it streams", async () => {
  const res = await raw("/big", "gzip");
  expect(res.headers.get("content-encoding")).toBe("gzip");
  expect(Buffer.from(gunzipSync(new Uint8Array(await res.arrayBuffer()))).toString()).toBe(big);
});

test("an event stream is flushed per event: the first arrives before the upstream sends the second", async () => {
  const res = await fetch(`${proxy.origin}/sse`, { headers: { "accept-encoding": "gzip" } }); // fetch decodes as it reads
  expect(res.headers.get("content-encoding")).toBe("gzip");
  const reader = res.body!.getReader();
  let got = "";
  while (!got.includes("\n\n")) got += new TextDecoder().decode((await reader.read()).value);
  expect(got).toStartWith("data: first");
  releaseSecond();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    got += new TextDecoder().decode(value);
  }
  expect(got).toEndWith("data: second\n\n");
});

test("request bodies: decoded before the upstream sees them when the route asks; a bomb over the limit fails", async () => {
  const seen: { encoding: string | null; body: string }[] = [];
  const u = startUpstream(async (req) => {
    seen.push({ encoding: req.headers.get("content-encoding"), body: await req.text() });
    return new Response("ok");
  });
  const p = await startProxy({
    routes: [
      { name: "decode", match: { path: { prefix: "/decode" } }, to: "u", compression: { decompress_requests: true, max_decompressed: "64KiB" } },
      { name: "as-is", to: "u" },
    ],
    clusters: { u: { endpoints: [u.origin] } },
  });
  try {
    const payload = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => i) });
    for (const [coding, encode] of [["gzip", (b: string) => Bun.gzipSync(b)], ["zstd", (b: string) => Bun.zstdCompressSync(b)]] as const) {
      const res = await fetch(`${p.origin}/decode`, { method: "POST", body: encode(payload), headers: { "content-encoding": coding } });
      expect(res.status).toBe(200);
      expect(seen.at(-1)).toEqual({ encoding: null, body: payload });
    }
    await (await fetch(`${p.origin}/other`, { method: "POST", body: Bun.gzipSync(payload), headers: { "content-encoding": "gzip" } })).text();
    expect(seen.at(-1)!.encoding).toBe("gzip"); // passed through untouched elsewhere
    const bomb = Bun.gzipSync(new Uint8Array(10 * 1024 * 1024)); // 10 MiB of zeros, ~10 KiB on the wire
    const res = await fetch(`${p.origin}/decode`, { method: "POST", body: bomb, headers: { "content-encoding": "gzip" } });
    expect(res.status).toBeGreaterThanOrEqual(400);
  } finally {
    await p.stop();
    u.stop(true);
  }
});
