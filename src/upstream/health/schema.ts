import { z } from "zod";
import { DurationSchema, PositiveDurationSchema } from "../../config/primitives.ts";

/** Active health checks: an HTTP request (or a gRPC Health/Check call) to every endpoint on an interval. */
export const HealthCheckSchema = z.strictObject({
  /** Path requested (GET). Give `path` or `grpc`. */
  path: z.string().startsWith("/").optional(),
  /**
   * A grpc.health.v1.Health/Check call over HTTP/2 (h2c for http:// endpoints) instead of a GET:
   * it passes when the answer is SERVING. `service`: the name asked about ("" = the server as a
   * whole, the default).
   */
  grpc: z.strictObject({ service: z.string().default("") }).optional(),
  /** Time between checks of one endpoint. Default 10s. */
  interval: PositiveDurationSchema.prefault("10s"),
  /** Random extra delay added to each interval, so checks do not align. Default 1s. */
  jitter: DurationSchema.prefault("1s"),
  /** A check slower than this fails. Default 2s. */
  timeout: PositiveDurationSchema.prefault("2s"),
  /** Statuses that pass. Default any 2xx. */
  expected_statuses: z.array(z.number().int().min(100).max(599)).optional(),
  /** Consecutive passes that bring an unhealthy endpoint back. Default 2. */
  healthy_threshold: z.number().int().min(1).default(2),
  /** Consecutive failures that take an endpoint out. Default 3. */
  unhealthy_threshold: z.number().int().min(1).default(3),
  /** Host header of the check; default the endpoint's host. */
  host: z.string().min(1).optional(),
}).superRefine((h, ctx) => {
  if ((h.path === undefined) === (h.grpc === undefined)) ctx.addIssue({ code: "custom", path: ["path"], message: "give exactly one of path (an HTTP check) or grpc (grpc.health.v1.Health/Check)" });
  if (h.grpc !== undefined && h.expected_statuses !== undefined) ctx.addIssue({ code: "custom", path: ["expected_statuses"], message: "a gRPC check passes on SERVING; expected_statuses are for HTTP checks" });
});

/** Passive outlier detection (Envoy's): endpoints that fail real traffic are ejected for a while. */
export const OutlierSchema = z.strictObject({
  /** Consecutive 5xx answers or failures that eject. Default 5; 0 disables. */
  consecutive_5xx: z.number().int().min(0).default(5),
  /** Consecutive gateway failures (502/503/504, refused, reset, timeout) that eject. Default 5; 0 disables. */
  consecutive_gateway_failure: z.number().int().min(0).default(5),
  /** Success rate over each interval: an endpoint with at least `minimum_requests` and a success rate below `threshold` % is ejected. */
  success_rate: z.strictObject({
    minimum_requests: z.number().int().min(1).default(20),
    threshold: z.number().min(0).max(100).default(80),
  }).optional(),
  /** The success-rate window, and how often ejections are reviewed. Default 10s. */
  interval: PositiveDurationSchema.prefault("10s"),
  /** Ejection time, multiplied by the number of times the endpoint has been ejected. Default 30s. */
  base_ejection_time: DurationSchema.prefault("30s"),
  /** Longest ejection. Default 300s. */
  max_ejection_time: DurationSchema.prefault("300s"),
  /** At most this share of the cluster is ejected at once (but one endpoint always may be). Default 10. */
  max_ejection_percent: z.number().min(0).max(100).default(10),
});

export type HealthCheckConfig = z.infer<typeof HealthCheckSchema>;
export type OutlierConfig = z.infer<typeof OutlierSchema>;
