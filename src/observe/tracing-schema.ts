/** `telemetry.tracing`: W3C trace context, sampling, and OTLP/HTTP export of spans (tracing.ts). */
import { z } from "zod";
import { DurationSchema, PositiveDurationSchema, TokenSchema } from "../config/primitives.ts";

const CollectorUrlSchema = z.string().refine((text) => {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.username === "" && url.password === "";
  } catch {
    return false;
  }
}, "must be an http:// or https:// URL (credentials go in `headers`)");

export const TracingSchema = z.strictObject({
  /** Switch tracing off without removing the section. Default true. */
  enabled: z.boolean().default(true),
  /** The collector's OTLP/HTTP traces URL (protobuf is sent). Default http://127.0.0.1:4318/v1/traces. */
  endpoint: CollectorUrlSchema.default("http://127.0.0.1:4318/v1/traces"),
  /** Extra headers on every export request, e.g. `authorization: Bearer ${OTLP_TOKEN}`. */
  headers: z.record(TokenSchema, z.string()).default({}),
  /**
   * `parent_based` (default): a request with a valid traceparent follows its sampled flag, a new
   * trace is sampled with probability `ratio`. `ratio`: every trace by `ratio`, whatever the caller decided.
   */
  sampler: z.enum(["parent_based", "ratio"]).default("parent_based"),
  /** Share of traces recorded (0…1), decided on the trace id so that every hop agrees. Default 1. */
  ratio: z.number().min(0).max(1).default(1),
  /** Resource attribute service.name. Default switchyard. */
  service_name: z.string().min(1).default("switchyard"),
  /**
   * More resource attributes (deployment.environment, cloud.region …); they override the defaults
   * (service.version, service.instance.id — a random id per process —, host.name, process.pid).
   */
  resource: z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** Spans sent per export request. Default 512. */
  max_batch_size: z.number().int().min(1).max(10_000).default(512),
  /** A batch is sent when it is full or this long after its first span. Default 5s. */
  flush_interval: PositiveDurationSchema.prefault("5s"),
  /** Spans waiting to be sent; beyond this, new spans are dropped (and counted). Default 2048. */
  max_queue_size: z.number().int().min(1).max(1_000_000).default(2048),
  /** One export request may take this long; also the most shutdown waits for the last spans. Default 10s. */
  export_timeout: PositiveDurationSchema.prefault("10s"),
  /** Retries of a batch the collector could not take (429, 502, 503, 504, network errors). */
  retry: z.strictObject({
    /** Tries per batch in total, the first included. Default 3. */
    attempts: z.number().int().min(1).max(10).default(3),
    /** First backoff, doubled per retry (with jitter); a Retry-After is honoured up to `max_backoff`. Default 500ms. */
    initial_backoff: DurationSchema.prefault("500ms"),
    /** Longest wait between tries. Default 5s. */
    max_backoff: DurationSchema.prefault("5s"),
  }).prefault({}),
}).refine((t) => t.max_batch_size <= t.max_queue_size, { message: "max_batch_size must not exceed max_queue_size", path: ["max_batch_size"] });

export type TracingConfig = z.infer<typeof TracingSchema>;

export const TelemetrySchema = z.strictObject({
  /** OpenTelemetry traces: a server span per request, a client span per upstream try. None when absent. */
  tracing: TracingSchema.optional(),
});
