/**
 * Finished spans → an OTLP ExportTraceServiceRequest in protobuf (the official
 * opentelemetry-proto definitions, generated under src/gen). Runs at export time, off the request path.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { ExportTraceServiceRequestSchema } from "../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.ts";
import type { AnyValue, KeyValue } from "../gen/opentelemetry/proto/common/v1/common_pb.ts";
import { Span_SpanKind, Status_StatusCode } from "../gen/opentelemetry/proto/trace/v1/trace_pb.ts";

export type AttributeValue = string | number | boolean;
export type Attributes = Record<string, AttributeValue>;

/** A span as the request path leaves it: plain data, encoded only when its batch is sent. */
export interface FinishedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  readonly kind: "server" | "client";
  /** performance.now() values (monotonic ms); made Unix nanoseconds when encoded. */
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Attributes;
  /** Status ERROR (with this message) when set; UNSET otherwise. */
  readonly error?: string;
}

/** Who sent the spans: the resource and the instrumentation scope. */
export interface SpanSource {
  readonly resource: Attributes;
  readonly scope: { readonly name: string; readonly version: string };
}

/** The Unix time of performance.now() = 0, in ns (computed apart: epoch ms × 1e6 is past 2^53). */
const ORIGIN_NS = BigInt(Math.floor(performance.timeOrigin)) * 1_000_000n + BigInt(Math.round((performance.timeOrigin % 1) * 1e6));

/** A performance.now() value → Unix nanoseconds; durations keep the monotonic clock's precision. */
export function unixNano(monotonicMs: number): bigint {
  return ORIGIN_NS + BigInt(Math.round(monotonicMs * 1e6));
}

function anyValue(value: AttributeValue): Omit<AnyValue, "$typeName"> {
  if (typeof value === "string") return { value: { case: "stringValue", value } };
  if (typeof value === "boolean") return { value: { case: "boolValue", value } };
  return Number.isSafeInteger(value) ? { value: { case: "intValue", value: BigInt(value) } } : { value: { case: "doubleValue", value } };
}

function keyValues(attributes: Attributes): Omit<KeyValue, "$typeName">[] {
  return Object.entries(attributes).map(([key, value]) => ({ key, value: anyValue(value) as AnyValue }));
}

const hexBytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));

export function encodeSpans(source: SpanSource, spans: readonly FinishedSpan[]): Uint8Array {
  const request = create(ExportTraceServiceRequestSchema, {
    resourceSpans: [{
      resource: { attributes: keyValues(source.resource) },
      scopeSpans: [{
        scope: { name: source.scope.name, version: source.scope.version },
        spans: spans.map((s) => ({
          traceId: hexBytes(s.traceId),
          spanId: hexBytes(s.spanId),
          parentSpanId: s.parentSpanId === "" ? new Uint8Array(0) : hexBytes(s.parentSpanId),
          traceState: s.traceState,
          name: s.name,
          kind: s.kind === "server" ? Span_SpanKind.SERVER : Span_SpanKind.CLIENT,
          startTimeUnixNano: unixNano(s.startMs),
          endTimeUnixNano: unixNano(s.endMs),
          attributes: keyValues(s.attributes),
          status: s.error === undefined ? {} : { code: Status_StatusCode.ERROR, message: s.error },
        })),
      }],
    }],
  });
  return toBinary(ExportTraceServiceRequestSchema, request);
}
