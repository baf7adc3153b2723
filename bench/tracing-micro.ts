/**
 * Micro-bench of tracing's cost per request (`bun bench/tracing-micro.ts`, ~3 s):
 * - request path: begin (parse traceparent, sample, ids) + one client span + finish (attributes,
 *   two spans queued), with tracing on and sampled, and with the trace not sampled;
 * - export side (same thread, off the request path): protobuf encoding per span, in 512-span batches.
 * The disabled case is one `runtime.tracer === undefined` check and not measured here.
 */
import { encodeSpans, type FinishedSpan } from "../src/observe/otlp.ts";
import { SpanExporter, spanSource } from "../src/observe/span-exporter.ts";
import { Tracer } from "../src/observe/tracing.ts";
import { TracingSchema } from "../src/observe/tracing-schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import type { Endpoint } from "../src/upstream/cluster.ts";

const N = 25_600;
// A collector that takes everything, so the exporter's queue drains as in production.
const collector = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(null) });
const config = TracingSchema.parse({ endpoint: `http://127.0.0.1:${collector.port}/v1/traces`, max_queue_size: 1_000_000, max_batch_size: 512, flush_interval: "10ms" });
const exporter = new SpanExporter(config);
const tracer = new Tracer(config, exporter);
const endpoint = { origin: "http://10.0.0.1:8080", address: "10.0.0.1:8080", hostname: "10.0.0.1", port: 8080, tls: undefined } as Endpoint;
const sampledHeaders = new Headers({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "user-agent": "bench/1.0" });
const unsampledHeaders = new Headers({ traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "user-agent": "bench/1.0" });

function context(headers: Headers, at: number): ProxyContext {
  return {
    requestId: "bench", method: "GET", path: "/v2/orders/7", host: "api.example.com", headers, clientIp: "203.0.113.7", startedAt: at,
    listener: { name: "public", proto: "https" }, route: { name: "orders" }, cluster: { name: "orders" }, status: 200, attempt: 1,
  } as unknown as ProxyContext;
}

/** Timed in chunks of 256 requests (512 spans, one batch); the export between chunks is not timed. */
async function requestPath(headers: Headers): Promise<number> {
  let timed = 0;
  for (let done = 0; done < N; done += 256) {
    const started = performance.now();
    for (let i = 0; i < 256; i++) {
      const trace = tracer.begin(headers);
      const span = trace.span;
      if (span !== undefined) {
        const client = span.startClient(endpoint, "GET", 0);
        client.settle(200, undefined);
        span.finish(context(headers, started), performance.now());
      }
    }
    timed += performance.now() - started;
    await exporter.flush();
  }
  return (timed * 1e6) / N;
}

function encoding(): number {
  const now = performance.now();
  const spans: FinishedSpan[] = Array.from({ length: 512 }, (_, i) => ({
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: `00f067aa0ba902${(i % 256).toString(16).padStart(2, "0")}`, parentSpanId: "00f067aa0ba902b7", traceState: "",
    name: "GET orders", kind: "server", startMs: now, endMs: now + 1,
    attributes: { "http.request.method": "GET", "url.path": "/v2/orders/7", "url.scheme": "https", "server.address": "api.example.com", "server.port": 443, "http.route": "orders", "http.response.status_code": 200, "client.address": "203.0.113.7", "user_agent.original": "bench/1.0", "network.protocol.version": "1.1", "switchyard.request_id": "5f1c…" },
  }));
  const source = spanSource(config);
  const rounds = 200;
  const started = performance.now();
  let bytes = 0;
  for (let i = 0; i < rounds; i++) bytes += encodeSpans(source, spans).byteLength;
  const perSpan = ((performance.now() - started) * 1e6) / (rounds * 512);
  console.log(`encode: ${Math.round(perSpan)} ns/span, ${Math.round(bytes / (rounds * 512))} bytes/span`);
  return perSpan;
}

for (let round = 1; round <= 3; round++) {
  const sampled = await requestPath(sampledHeaders);
  const unsampled = await requestPath(unsampledHeaders);
  console.log(`round ${round}: request path, sampled ${Math.round(sampled)} ns/request (server + client span), not sampled ${Math.round(unsampled)} ns/request`);
}
encoding();
await exporter.flush();
collector.stop(true);
