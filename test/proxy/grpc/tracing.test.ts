/** Spans of native gRPC calls: the RPC semantic conventions (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code) and HTTP/2. */
import { afterAll, expect, test } from "bun:test";
import { startCollector } from "../../helpers/collector.ts";
import { EchoClient, grpc, startEchoServer } from "../../helpers/grpc.ts";
import { startProxy } from "../../helpers/proxy.ts";
import { waitFor } from "../../helpers/tmp.ts";

const collector = startCollector();
const server = await startEchoServer();
const proxy = await startProxy({
  listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
  telemetry: { tracing: { endpoint: collector.url, flush_interval: "20ms" } },
  clusters: { echo: { endpoints: [server.origin] } },
  routes: [{ name: "echo", to: "echo" }],
});
const client = new EchoClient(`127.0.0.1:${proxy.port}`);

afterAll(async () => {
  client.close();
  await proxy.stop();
  await server.stop();
  collector.stop();
});

test("a call's server span carries the gRPC service, method and status, and network.protocol.version 2", async () => {
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const md = new grpc.Metadata();
  md.set("traceparent", `00-${trace}-00f067aa0ba902b7-01`);
  expect((await client.unary({ text: "fail:5" }, md)).error?.code).toBe(grpc.status.NOT_FOUND);
  const span = await waitFor("server span", () => collector.trace(trace).find((s) => s.kind === "server"));
  expect(span.attributes).toMatchObject({
    "rpc.system": "grpc", "rpc.service": "switchyard.test.grpc.Echo", "rpc.method": "Unary", "rpc.grpc.status_code": 5,
    "network.protocol.version": "2", "http.route": "echo",
  });
  expect(collector.trace(trace).some((s) => s.kind === "client")).toBe(true);
});
