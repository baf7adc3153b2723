/**
 * Clients that forbid a dynamic HPACK table (SETTINGS_HEADER_TABLE_SIZE 0, as nginx's grpc_pass
 * does). Bun 1.4.5's node:http2 server ignores the setting: it inserts response fields into its
 * dynamic table and refers to them in later answers (nginx: "upstream sent invalid http2 table
 * index"), and never sends the table size update RFC 7541 §4.2 requires (nghttp2-based clients:
 * COMPRESSION_ERROR on the first answer — not fixable from JavaScript). The listener sends every
 * field never-indexed to such a client, so no answer depends on a table it does not keep.
 */
import { afterAll, expect, test } from "bun:test";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { EchoClient, grpc, startEchoServer } from "../helpers/grpc.ts";
import { dataFrame, dynamicTableUse, FrameType, getFields, headersFrame, type RawH2, rawH2 } from "../helpers/h2-raw.ts";
import { startProxy } from "../helpers/proxy.ts";
import { startUpstream } from "../helpers/upstream.ts";

const upstream = startUpstream(() => new Response("ok", { headers: { "x-custom": "yes", "set-cookie": "a=1" } }));
const echo = await startEchoServer();
const proxy = await startProxy({
  listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
  clusters: { up: { endpoints: [upstream.origin] }, echo: { endpoints: [echo.origin] } },
  routes: [{ match: { path: { prefix: "/switchyard.test.grpc.Echo/" } }, to: "echo" }, { to: "up" }],
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
  await echo.stop();
});

/** Three GETs on one connection; every response HEADERS frame's use of the dynamic table. */
async function threeAnswers(c: RawH2): Promise<ReturnType<typeof dynamicTableUse>[]> {
  for (const id of [1, 3, 5]) {
    c.send(headersFrame(id, getFields(`/r${id}`, "app.test"), { endStream: true }));
    await c.waitFor((f) => f.type === FrameType.DATA && f.stream === id && (f.flags & 1) === 1);
  }
  c.close();
  return c.frames.filter((f) => f.type === FrameType.HEADERS).map(dynamicTableUse);
}

test("the bug, on a bare node:http2 server under Bun: fields indexed and referred to despite a 0-byte table", async () => {
  const bare = http2.createServer();
  bare.on("stream", (s: http2.ServerHttp2Stream) => {
    s.on("error", () => {});
    s.respond({ ":status": 200, "x-custom": "same" });
    s.end("x");
  });
  await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", () => resolve()));
  const uses = await threeAnswers(await rawH2((bare.address() as AddressInfo).port, { settings: { 1: 0 } }));
  expect(uses[0]!.inserts).toBeGreaterThan(0);
  expect(uses.slice(1).some((u) => u.references.length > 0)).toBe(true);
  expect(uses[0]!.sizeUpdates).toEqual([]); // RFC 7541 §4.2 wants one here
  bare.close();
});

test("the listener: nothing indexed, nothing referred to, for a client with a 0-byte table", async () => {
  const uses = await threeAnswers(await rawH2(proxy.port, { settings: { 1: 0 } }));
  expect(uses).toHaveLength(3);
  for (const u of uses) expect(u).toEqual({ references: [], inserts: 0, sizeUpdates: [] });
});

test("a client that keeps a table still gets the compact encoding", async () => {
  const uses = await threeAnswers(await rawH2(proxy.port));
  expect(uses.some((u) => u.inserts > 0 || u.references.length > 0)).toBe(true);
});

test("gRPC heads and trailers to a client with a 0-byte table: nothing indexed", async () => {
  const c = await rawH2(proxy.port, { settings: { 1: 0 } });
  const message = Buffer.concat([Buffer.from([0, 0, 0, 0, 4, 0x0a, 2]), Buffer.from("hi")]);
  for (const id of [1, 3]) {
    c.send(headersFrame(id, [...getFields("/switchyard.test.grpc.Echo/Unary", "app.test", [["content-type", "application/grpc"], ["te", "trailers"]], "POST")]), dataFrame(id, message, true));
    await c.waitFor((f) => f.type === FrameType.HEADERS && f.stream === id && (f.flags & 1) === 1);
  }
  c.close();
  const blocks = c.frames.filter((f) => f.type === FrameType.HEADERS);
  expect(blocks).toHaveLength(4); // a head and trailers per call
  for (const f of blocks) expect(dynamicTableUse(f)).toEqual({ references: [], inserts: 0, sizeUpdates: [] });
});

test("grpc-js (which keeps a table) is served as before", async () => {
  const client = new EchoClient(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
  for (let i = 0; i < 3; i++) expect((await client.unary({ text: `call ${i}` })).reply?.text).toBe(`call ${i}`);
  client.close();
});
