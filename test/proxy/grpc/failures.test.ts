/**
 * Native gRPC failures that need processes and certificates of their own: an upstream that dies
 * in the middle of a server stream, an h2 (TLS, ALPN) upstream, a slow reader of 10,000 large
 * messages with the proxy's memory measured in its own process, and nghttp as the client.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { makePki, type TestPki } from "../../helpers/certs.ts";
import { spawnProxy, writeTempConfig } from "../../helpers/cli.ts";
import { EchoClient, grpc, drain, startEchoServer } from "../../helpers/grpc.ts";
import { startProxy } from "../../helpers/proxy.ts";

let pki: TestPki;
beforeAll(() => {
  pki = makePki();
});
afterAll(() => pki.cleanup());

async function childServer(): Promise<{ port: number; proc: ReturnType<typeof Bun.spawn> }> {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "../../fixtures/grpc/server.ts")], { stdout: "pipe", stderr: "inherit" });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return { port: Number(new TextDecoder().decode(value).trim()), proc };
}

test("an upstream that dies mid-stream: the client gets the messages before it, then UNAVAILABLE", async () => {
  const child = await childServer();
  const proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
    clusters: { echo: { endpoints: [`http://127.0.0.1:${child.port}`] } },
    routes: [{ to: "echo" }],
  });
  const client = new EchoClient(`127.0.0.1:${proxy.port}`);
  const result = await drain(client.serverStream({ count: 1000, size: 10, die_after: 50 }));
  expect(result.count).toBe(50);
  expect(result.status.code).toBe(grpc.status.UNAVAILABLE);
  expect(result.status.details).toBe("the upstream broke off the call before its trailers");
  client.close();
  await proxy.stop();
  await child.proc.exited;
});

test("an h2 upstream over TLS (ALPN h2, verified against the cluster's CA)", async () => {
  const cert = pki.issue("grpc-up", { subject: "/CN=grpc.internal", dns: ["grpc.internal"], usage: "server" });
  const server = await startEchoServer(grpc.ServerCredentials.createSsl(Buffer.from(pki.ca.certPem), [{ private_key: Buffer.from(cert.keyPem), cert_chain: Buffer.from(cert.certPem) }], false));
  const proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
    clusters: { echo: { endpoints: [`https://127.0.0.1:${server.port}`], tls: { ca: pki.ca.cert, server_name: "grpc.internal" } } },
    routes: [{ to: "echo" }],
  });
  const client = new EchoClient(`127.0.0.1:${proxy.port}`);
  const { reply, error, trailers } = await client.unary({ text: "over tls" });
  expect(error).toBeUndefined();
  expect(reply?.text).toBe("over tls");
  expect(trailers?.get("x-trailer")).toEqual(["yes"]);
  client.close();
  await proxy.stop();
  await server.stop();
});

test("a slow reader of 10,000 messages of 16 KiB: the proxy process stays small (flow control both ways)", async () => {
  const server = await startEchoServer();
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
    clusters: { echo: { endpoints: [server.origin] } },
    routes: [{ to: "echo" }],
    access_log: { enabled: false },
  });
  const proxy = await spawnProxy(config.file);
  const client = new EchoClient(`127.0.0.1:${proxy.port}`);
  // Warm up (connections, JIT), then the baseline.
  await drain(client.serverStream({ count: 100, size: 16 * 1024 }));
  const baseline = proxy.rss();
  let peak = baseline;
  const result = await drain(client.serverStream({ count: 10_000, size: 16 * 1024 }), async (_, i) => {
    if (i % 10 === 0) peak = Math.max(peak, proxy.rss());
    if (i < 100) await Bun.sleep(10); // a reader that stalls for a second first
  });
  expect(result.count).toBe(10_000);
  expect(result.status.code).toBe(grpc.status.OK);
  // 160 MiB went through; the proxy held a few windows' worth at a time.
  expect((peak - baseline) / 1024 / 1024).toBeLessThan(48);
  client.close();
  await proxy.stop();
  config.cleanup();
  await server.stop();
});

test("nghttp as the client: the gRPC answer's trailers (grpc-status) come through", async () => {
  const server = await startEchoServer();
  const proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
    clusters: { echo: { endpoints: [server.origin] } },
    routes: [{ to: "echo" }],
  });
  // Msg { text: "nghttp" } framed: no compression, 4-byte length, field 1 (text) as a length-delimited string.
  const message = Buffer.concat([Buffer.from([0x0a, 6]), Buffer.from("nghttp")]);
  const frame = Buffer.concat([Buffer.from([0]), Buffer.from([0, 0, 0, message.length]), message]);
  const file = pki.file("grpc-body.bin");
  await Bun.write(file, frame);
  const proc = Bun.spawn(["nghttp", "-v", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", file, `http://127.0.0.1:${proxy.port}/switchyard.test.grpc.Echo/Unary`], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  expect(out).toContain(":status: 200");
  expect(out).toMatch(/recv \(stream_id=\d+\) grpc-status: 0/);
  expect(out).toMatch(/recv \(stream_id=\d+\) x-trailer: yes/);
  await proxy.stop();
  await server.stop();
});
