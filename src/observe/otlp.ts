/**
 * Finished spans → an OTLP ExportTraceServiceRequest in protobuf, written with @bufbuild/protobuf's
 * BinaryWriter. Field numbers are read from the generated descriptors of the official
 * opentelemetry-proto definitions (src/gen), not typed in here. The messages are written field
 * by field rather than through create() + toBinary() (~9 µs per span, warm; bigint fixed64 and
 * fork/join per attribute were most of it): attributes are sized up front, timestamps written as
 * two fixed32 halves (bench/tracing-micro.ts). Tests decode the output with fromBinary and the
 * generated schema. Runs at export time, off the request path.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { ExportTraceServiceRequestSchema } from "../gen/opentelemetry/proto/collector/trace/v1/trace_service_pb.ts";
import { AnyValueSchema, InstrumentationScopeSchema, KeyValueSchema } from "../gen/opentelemetry/proto/common/v1/common_pb.ts";
import { ResourceSchema } from "../gen/opentelemetry/proto/resource/v1/resource_pb.ts";
import { ResourceSpansSchema, ScopeSpansSchema, Span_SpanKind, SpanSchema, Status_StatusCode, StatusSchema } from "../gen/opentelemetry/proto/trace/v1/trace_pb.ts";

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

const TWO_32 = 2 ** 32;
const ORIGIN_LO = Number(ORIGIN_NS % BigInt(TWO_32));
const ORIGIN_HI = Number(ORIGIN_NS / BigInt(TWO_32));

/** unixNano as a fixed64 (little-endian: low word, high word), in exact double arithmetic, no bigint. */
function writeUnixNano(w: BinaryWriter, monotonicMs: number): void {
  const delta = Math.max(0, Math.round(monotonicMs * 1e6)); // < 2^53 for ~100 days of uptime
  let lo = ORIGIN_LO + (delta % TWO_32);
  let hi = ORIGIN_HI + Math.floor(delta / TWO_32);
  if (lo >= TWO_32) {
    lo -= TWO_32;
    hi++;
  }
  w.fixed32(lo).fixed32(hi);
}

/** Bytes of a varint holding `n` (an unsigned 32-bit value, or a safe integer; negatives take 10). */
function varintSize(n: number): number {
  if (n < 0) return 10;
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A message's field numbers by their generated (camelCase) names. */
function numbers<const K extends string>(schema: DescMessage, names: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const name of names) {
    const field = schema.field[name];
    if (field === undefined) throw new Error(`${schema.typeName} has no field ${name}`);
    out[name] = field.number;
  }
  return out;
}

const REQUEST = numbers(ExportTraceServiceRequestSchema, ["resourceSpans"]);
const RESOURCE_SPANS = numbers(ResourceSpansSchema, ["resource", "scopeSpans"]);
const RESOURCE = numbers(ResourceSchema, ["attributes"]);
const SCOPE_SPANS = numbers(ScopeSpansSchema, ["scope", "spans"]);
const SCOPE = numbers(InstrumentationScopeSchema, ["name", "version"]);
const SPAN = numbers(SpanSchema, ["traceId", "spanId", "traceState", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano", "attributes", "status"]);
const STATUS = numbers(StatusSchema, ["message", "code"]);
const KEY_VALUE = numbers(KeyValueSchema, ["key", "value"]);
const ANY_VALUE = numbers(AnyValueSchema, ["stringValue", "boolValue", "intValue", "doubleValue"]);

const LEN = WireType.LengthDelimited;
const tagSize = (field: number) => varintSize(field << 3);
const KEY_TAG = tagSize(KEY_VALUE.key);
const VALUE_TAG = tagSize(KEY_VALUE.value);

/** Each attribute as a KeyValue, its lengths computed rather than forked and joined (UTF-8 sizes as string() writes them). */
function writeAttributes(w: BinaryWriter, field: number, attributes: Attributes): void {
  for (const key in attributes) {
    const value = attributes[key]!;
    const keyBytes = Buffer.byteLength(key);
    let valueBytes: number;
    if (typeof value === "string") {
      const n = Buffer.byteLength(value);
      valueBytes = tagSize(ANY_VALUE.stringValue) + varintSize(n) + n;
    } else if (typeof value === "boolean") valueBytes = tagSize(ANY_VALUE.boolValue) + 1;
    else if (Number.isSafeInteger(value)) valueBytes = tagSize(ANY_VALUE.intValue) + varintSize(value);
    else valueBytes = tagSize(ANY_VALUE.doubleValue) + 8;
    w.tag(field, LEN).uint32(KEY_TAG + varintSize(keyBytes) + keyBytes + VALUE_TAG + varintSize(valueBytes) + valueBytes);
    w.tag(KEY_VALUE.key, LEN).string(key);
    w.tag(KEY_VALUE.value, LEN).uint32(valueBytes);
    if (typeof value === "string") w.tag(ANY_VALUE.stringValue, LEN).string(value);
    else if (typeof value === "boolean") w.tag(ANY_VALUE.boolValue, WireType.Varint).bool(value);
    else if (Number.isSafeInteger(value)) w.tag(ANY_VALUE.intValue, WireType.Varint).int64(value);
    else w.tag(ANY_VALUE.doubleValue, WireType.Bit64).double(value);
  }
}

const hexBytes = (hex: string) => Uint8Array.fromHex(hex);

function writeSpan(w: BinaryWriter, s: FinishedSpan): void {
  w.tag(SCOPE_SPANS.spans, LEN).fork();
  w.tag(SPAN.traceId, LEN).bytes(hexBytes(s.traceId));
  w.tag(SPAN.spanId, LEN).bytes(hexBytes(s.spanId));
  if (s.traceState !== "") w.tag(SPAN.traceState, LEN).string(s.traceState);
  if (s.parentSpanId !== "") w.tag(SPAN.parentSpanId, LEN).bytes(hexBytes(s.parentSpanId));
  w.tag(SPAN.name, LEN).string(s.name);
  w.tag(SPAN.kind, WireType.Varint).int32(s.kind === "server" ? Span_SpanKind.SERVER : Span_SpanKind.CLIENT);
  writeUnixNano(w.tag(SPAN.startTimeUnixNano, WireType.Bit64), s.startMs);
  writeUnixNano(w.tag(SPAN.endTimeUnixNano, WireType.Bit64), s.endMs);
  writeAttributes(w, SPAN.attributes, s.attributes);
  if (s.error !== undefined) {
    w.tag(SPAN.status, LEN).fork();
    w.tag(STATUS.message, LEN).string(s.error);
    w.tag(STATUS.code, WireType.Varint).int32(Status_StatusCode.ERROR);
    w.join();
  }
  w.join();
}

export function encodeSpans(source: SpanSource, spans: readonly FinishedSpan[]): Uint8Array {
  const w = new BinaryWriter();
  w.tag(REQUEST.resourceSpans, LEN).fork();
  w.tag(RESOURCE_SPANS.resource, LEN).fork();
  writeAttributes(w, RESOURCE.attributes, source.resource);
  w.join();
  w.tag(RESOURCE_SPANS.scopeSpans, LEN).fork();
  w.tag(SCOPE_SPANS.scope, LEN).fork();
  w.tag(SCOPE.name, LEN).string(source.scope.name);
  w.tag(SCOPE.version, LEN).string(source.scope.version);
  w.join();
  for (const span of spans) writeSpan(w, span);
  w.join().join();
  return w.finish();
}
