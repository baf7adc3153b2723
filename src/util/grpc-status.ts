/**
 * gRPC status codes and the wire rules that the gRPC proxy (proxy/grpc/), the HTTP/2 engine and
 * observe/ need (grpc/doc/PROTOCOL-HTTP2.md, statuscodes.md, http-grpc-status-mapping.md): which
 * status a proxy failure or an HTTP answer becomes, `grpc-timeout`, `grpc-message` encoding, and
 * the trailers-only answer. Pure.
 */
import type { SwitchyardError } from "./errors.ts";

export const GrpcStatus = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;

/** Names by code, as metrics and logs show them (a code outside 0–16 from an upstream is "UNKNOWN"). */
export const GRPC_STATUS_NAMES = Object.keys(GrpcStatus) as (keyof typeof GrpcStatus)[];

export function grpcStatusName(code: number): string {
  return GRPC_STATUS_NAMES[code] ?? "UNKNOWN";
}

/** `application/grpc`, `application/grpc+proto`, `application/grpc;…` — not gRPC-Web (`application/grpc-web…`). */
export function isGrpcContentType(value: string | null | undefined): boolean {
  if (value === null || value === undefined || !value.startsWith("application/grpc")) return false;
  const next = value.charCodeAt(16);
  return Number.isNaN(next) || next === 43 /* + */ || next === 59 /* ; */;
}

/** What a proxy failure is to a gRPC client: the mapping, by error code first, then by the HTTP status it would have had. */
const BY_CODE: Readonly<Record<string, number>> = {
  client_aborted: GrpcStatus.CANCELLED,
  upstream_timeout: GrpcStatus.DEADLINE_EXCEEDED,
  idle_timeout: GrpcStatus.DEADLINE_EXCEEDED,
  client_timeout: GrpcStatus.DEADLINE_EXCEEDED,
  upstream_connect_timeout: GrpcStatus.UNAVAILABLE,
  upstream_connect_refused: GrpcStatus.UNAVAILABLE,
  upstream_reset: GrpcStatus.UNAVAILABLE,
  upstream_error: GrpcStatus.UNAVAILABLE,
  upstream_tls_error: GrpcStatus.UNAVAILABLE,
  upstream_bad_status: GrpcStatus.UNAVAILABLE,
  no_healthy_endpoint: GrpcStatus.UNAVAILABLE,
  draining: GrpcStatus.UNAVAILABLE,
  overloaded: GrpcStatus.RESOURCE_EXHAUSTED,
  circuit_open: GrpcStatus.UNAVAILABLE,
  rate_limited: GrpcStatus.RESOURCE_EXHAUSTED,
  body_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  headers_too_large: GrpcStatus.RESOURCE_EXHAUSTED,
  no_route: GrpcStatus.UNIMPLEMENTED,
  method_not_allowed: GrpcStatus.UNIMPLEMENTED,
  method_not_implemented: GrpcStatus.UNIMPLEMENTED,
  unauthenticated: GrpcStatus.UNAUTHENTICATED,
  forbidden: GrpcStatus.PERMISSION_DENIED,
};

export function grpcStatusOfError(error: SwitchyardError): number {
  return BY_CODE[error.code] ?? grpcStatusOfHttp(error.status);
}

/**
 * An HTTP status without a grpc-status (http-grpc-status-mapping.md), except that the limits a
 * proxy enforces (413, 429, 431) are RESOURCE_EXHAUSTED and timeouts (408, 504) DEADLINE_EXCEEDED.
 */
export function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 200: return GrpcStatus.UNKNOWN; // a 200 without grpc-status is not a gRPC answer
    case 400: return GrpcStatus.INTERNAL;
    case 401: return GrpcStatus.UNAUTHENTICATED;
    case 403: return GrpcStatus.PERMISSION_DENIED;
    case 404: return GrpcStatus.UNIMPLEMENTED;
    case 408: case 504: return GrpcStatus.DEADLINE_EXCEEDED;
    case 413: case 429: case 431: return GrpcStatus.RESOURCE_EXHAUSTED;
    case 499: return GrpcStatus.CANCELLED;
    case 502: case 503: return GrpcStatus.UNAVAILABLE;
    default: return status >= 500 ? GrpcStatus.INTERNAL : GrpcStatus.UNKNOWN;
  }
}

/** The HTTP status a gRPC status stands for, for outlier detection, metrics' status classes and the breaker. */
export function httpStatusOfGrpc(code: number): number {
  switch (code) {
    case GrpcStatus.OK: return 200;
    case GrpcStatus.UNAVAILABLE: return 503;
    case GrpcStatus.DEADLINE_EXCEEDED: return 504;
    case GrpcStatus.INTERNAL: case GrpcStatus.UNKNOWN: case GrpcStatus.DATA_LOSS: return 500;
    case GrpcStatus.UNAUTHENTICATED: return 401;
    case GrpcStatus.PERMISSION_DENIED: return 403;
    case GrpcStatus.RESOURCE_EXHAUSTED: return 429;
    case GrpcStatus.UNIMPLEMENTED: return 501;
    case GrpcStatus.CANCELLED: return 499;
    default: return 400; // the caller's request was refused by the service (NOT_FOUND, INVALID_ARGUMENT…)
  }
}

/** RST_STREAM codes a gRPC client reads as a status (PROTOCOL-HTTP2.md "Errors"). */
export function grpcStatusOfReset(rstCode: number): number {
  if (rstCode === 7) return GrpcStatus.UNAVAILABLE; // REFUSED_STREAM: not processed, safe to retry
  if (rstCode === 8) return GrpcStatus.CANCELLED;
  if (rstCode === 11) return GrpcStatus.RESOURCE_EXHAUSTED; // ENHANCE_YOUR_CALM
  if (rstCode === 12) return GrpcStatus.PERMISSION_DENIED; // INADEQUATE_SECURITY
  return GrpcStatus.INTERNAL;
}

const TIMEOUT_UNITS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** `grpc-timeout` (up to 8 digits and a unit) in ms; undefined when absent or malformed (then ignored, as grpc-go does). */
export function parseGrpcTimeout(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  return Number(m[1]) * TIMEOUT_UNITS[m[2]!]!;
}

/** A `grpc-timeout` value for `ms` (at least 1 ms), in whole milliseconds while they fit 8 digits. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(1, Math.ceil(ms));
  return whole < 100_000_000 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

/** `grpc-message`: percent-encoded UTF-8, all but printable ASCII other than `%` (PROTOCOL-HTTP2.md). */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The trailers-only answer a gRPC client reads as a status (HTTP 200, everything in one HEADERS frame). */
export function grpcErrorResponse(code: number, message: string, requestId: string, extra?: Record<string, string>): Response {
  const headers = new Headers(extra);
  headers.set("content-type", "application/grpc");
  headers.set("grpc-status", String(code));
  headers.set("grpc-message", encodeGrpcMessage(message));
  if (requestId !== "") headers.set("x-request-id", requestId);
  return new Response(null, { status: 200, headers });
}

/** `/package.Service/Method` → its parts (span attributes rpc.service, rpc.method); undefined for any other path. */
export function grpcMethodOf(path: string): { service: string; method: string } | undefined {
  const slash = path.indexOf("/", 1);
  if (path[0] !== "/" || slash === -1 || slash === path.length - 1 || path.indexOf("/", slash + 1) !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
