/**
 * A test OTLP/HTTP collector: Bun.serve on port 0 that decodes every export request with the
 * generated ExportTraceServiceRequest schema and keeps the spans as plain data (ids in hex).
 * Its answer is up to the test (200 by default).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { ExportTraceServiceRequestSchema } from "../../src/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.ts";
import type { AnyValue, KeyValue } from "../../src/gen/opentelemetry/proto/common/v1/common_pb.ts";
import { Span_SpanKind, Status_StatusCode } from "../../src/gen/opentelemetry/proto/trace/v1/trace_pb.ts";

export type Value = string | number | boolean;

export interface SeenSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: "server" | "client" | "other";
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, Value>;
  status: "unset" | "ok" | "error";
  statusMessage: string;
  resource: Record<string, Value>;
  scope: string;
}

export interface ExportSeen {
  headers: Record<string, string>;
  spans: number;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

function value(v: AnyValue | undefined): Value {
  const inner = v?.value;
  switch (inner?.case) {
    case "stringValue":
    case "boolValue":
    case "doubleValue":
      return inner.value;
    case "intValue":
      return Number(inner.value);
    default:
      throw new Error(`unexpected attribute value ${inner?.case}`);
  }
}

const attributes = (kvs: KeyValue[]) => Object.fromEntries(kvs.map((kv) => [kv.key, value(kv.value)]));

export type Answer = (request: Request, n: number) => Response | Promise<Response>;

export function startCollector(answer: Answer = () => new Response(new Uint8Array(0), { headers: { "content-type": "application/x-protobuf" } })) {
  const spans: SeenSpan[] = [];
  const exports: ExportSeen[] = [];
  const state = { answer, requests: 0, undecodable: 0 };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const n = ++state.requests;
      const body = new Uint8Array(await req.arrayBuffer());
      let decoded;
      try {
        decoded = fromBinary(ExportTraceServiceRequestSchema, body);
      } catch {
        state.undecodable++;
        return new Response("bad protobuf", { status: 400 });
      }
      const response = await state.answer(req, n);
      // Only an accepted export counts as received (a refused one is sent again, or lost).
      if (response.status >= 200 && response.status < 300) {
        let count = 0;
        for (const rs of decoded.resourceSpans) {
          const resource = attributes(rs.resource?.attributes ?? []);
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              count++;
              spans.push({
                traceId: hex(s.traceId),
                spanId: hex(s.spanId),
                parentSpanId: hex(s.parentSpanId),
                traceState: s.traceState,
                name: s.name,
                kind: s.kind === Span_SpanKind.SERVER ? "server" : s.kind === Span_SpanKind.CLIENT ? "client" : "other",
                startNs: s.startTimeUnixNano,
                endNs: s.endTimeUnixNano,
                attributes: attributes(s.attributes),
                status: s.status?.code === Status_StatusCode.ERROR ? "error" : s.status?.code === Status_StatusCode.OK ? "ok" : "unset",
                statusMessage: s.status?.message ?? "",
                resource,
                scope: ss.scope?.name ?? "",
              });
            }
          }
        }
        exports.push({ headers: Object.fromEntries(req.headers), spans: count });
      }
      return response;
    },
  });
  return {
    server,
    url: `http://127.0.0.1:${server.port}/v1/traces`,
    spans,
    exports,
    state,
    /** The spans of one trace. */
    trace: (traceId: string) => spans.filter((s) => s.traceId === traceId),
    stop: () => server.stop(true),
  };
}

export type Collector = ReturnType<typeof startCollector>;
