import { z } from "zod";
import { DurationSchema } from "../config/primitives.ts";
import { UpstreamTlsSchema } from "../security/tls-schema.ts";
import { BalancerSchema } from "./balancers/schema.ts";
import { DiscoverySchema } from "./discovery/schema.ts";
import { HealthCheckSchema, OutlierSchema } from "./health/schema.ts";
import { BreakerSchema, LimitsSchema, RetryBudgetSchema } from "./limits-schema.ts";

/** An endpoint: `http://host:port` or `https://host:port` (a bare `host:port` means http). */
export const EndpointSchema = z.union([
  z.string().min(1),
  z.strictObject({
    url: z.string().min(1),
    /** Relative weight for weighted balancers. Default 1. */
    weight: z.number().int().min(1).max(1000).default(1),
  }),
]).superRefine((value, ctx) => {
  const text = typeof value === "string" ? value : value.url;
  if (parseEndpointUrl(text) === undefined) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not an endpoint (use http://host:port, https://host:port or host:port)` });
  }
});

export function parseEndpointUrl(text: string): URL | undefined {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`;
  try {
    const url = new URL(withScheme);
    if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
    if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) return undefined;
    return url;
  } catch {
    return undefined;
  }
}

export const ClusterSchema = z.strictObject({
  /** Static endpoints (or give `discovery`). */
  endpoints: z.array(EndpointSchema).min(1, "needs at least one endpoint").optional(),
  /** Endpoints from DNS (A/AAAA or SRV) or a watched file, instead of `endpoints`. */
  discovery: DiscoverySchema.optional(),
  /** How an endpoint is chosen: round_robin (default), weighted_round_robin, least_request, random, ring_hash, maglev. */
  balancer: BalancerSchema.prefault({ type: "round_robin" }),
  /** Active HTTP health checks; none when absent. */
  health_check: HealthCheckSchema.optional(),
  /** Passive outlier detection on real traffic; none when absent. */
  outlier: OutlierSchema.optional(),
  /** When fewer than this % of endpoints are available, requests go to all of them (Envoy's panic mode). Default 50; 0 = never. */
  panic_threshold: z.number().min(0).max(100).default(50),
  /** Resource limits (Envoy's circuit-breaker thresholds); over one, 503 with x-switchyard-overloaded. */
  limits: LimitsSchema.prefault({}),
  /** Error-rate circuit breaker; none when absent. */
  breaker: BreakerSchema.optional(),
  /** Caps retries to this cluster: at most `percent` of its requests in flight (but `min_concurrency` always). Default 20% / 10. */
  retry_budget: RetryBudgetSchema.prefault({}),
  /** When false, Authorization and Cookie are stripped before this cluster sees a request. Default true. */
  trusted: z.boolean().default(true),
  /**
   * How `https://` endpoints are verified, and the client certificate they are shown (mTLS to the
   * backend). Without it, https endpoints are verified against the system's roots and their host.
   * With it, every endpoint must be https (a plain one would silently skip what it asks for).
   */
  tls: UpstreamTlsSchema.optional(),
  /**
   * The HTTP version spoken to the endpoints: `http1` (default), `http2` (https:// endpoints by ALPN,
   * http:// ones by prior knowledge, h2c), `http3` (QUIC; https:// endpoints verified against the
   * system's roots only). Native gRPC calls use HTTP/2 whatever this says (gRPC needs it).
   */
  protocol: z.enum(["http1", "http2", "http3"]).default("http1"),
  timeouts: z.strictObject({
    /** Time allowed to open a TCP connection to an endpoint. Default 5s. */
    connect: DurationSchema.prefault("5s"),
  }).prefault({ connect: "5s" }),
}).superRefine((c, ctx) => {
  if ((c.endpoints === undefined) === (c.discovery === undefined)) {
    ctx.addIssue({ code: "custom", path: ["endpoints"], message: "give exactly one of endpoints or discovery" });
  }
  if (c.tls) {
    c.endpoints?.forEach((e, i) => {
      const url = parseEndpointUrl(typeof e === "string" ? e : e.url);
      if (url?.protocol === "http:") ctx.addIssue({ code: "custom", path: ["endpoints", i], message: "the cluster has tls settings: use https:// for its endpoints" });
    });
    if (c.discovery && "scheme" in c.discovery && c.discovery.scheme !== "https") {
      ctx.addIssue({ code: "custom", path: ["discovery", "scheme"], message: "the cluster has tls settings: set scheme: https" });
    }
  }
  if (c.protocol === "http3") {
    c.endpoints?.forEach((e, i) => {
      const url = parseEndpointUrl(typeof e === "string" ? e : e.url);
      if (url?.protocol === "http:") ctx.addIssue({ code: "custom", path: ["endpoints", i], message: "protocol http3 needs https:// endpoints (QUIC is always encrypted)" });
    });
    if (c.discovery && "scheme" in c.discovery && c.discovery.scheme !== "https") ctx.addIssue({ code: "custom", path: ["discovery", "scheme"], message: "protocol http3 needs scheme: https" });
    // Measured on Bun 1.4.5: fetch over HTTP/3 fails (HTTP3Unsupported) with tls.ca or tls.serverName.
    if (c.tls !== undefined && (c.tls.ca !== undefined || c.tls.server_name !== undefined || c.tls.cert !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["protocol"], message: "http3 upstreams are verified against the system's roots only (Bun's fetch over HTTP/3 takes no tls.ca, server_name or client certificate); use http2" });
    }
  }
  if (c.balancer.type === "ring_hash" && c.endpoints) {
    const weight = c.endpoints.reduce((sum, e) => sum + (typeof e === "string" ? 1 : e.weight), 0);
    if (weight * c.balancer.points_per_weight > 1_000_000) {
      ctx.addIssue({ code: "custom", path: ["balancer", "points_per_weight"], message: `the ring would have ${weight * c.balancer.points_per_weight} points; keep weights × points_per_weight ≤ 1,000,000` });
    }
  }
});

export type ClusterConfig = z.infer<typeof ClusterSchema>;
