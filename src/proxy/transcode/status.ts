/**
 * gRPC status codes (grpc/doc/statuscodes.md): their Connect names, the HTTP status a JSON client
 * gets for each (the mapping of google.rpc.Code, as grpc-gateway and Envoy's transcoder use), and
 * the code an upstream's bare HTTP status stands for when it sent no gRPC status of its own.
 */
import type { ProxyContext } from "../context.ts";

/** Index = gRPC code; the names are the Connect protocol's (snake case, "canceled" with one l). */
const GRPC_CODE_NAMES = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
] as const;

/** The codes named in code here (the rest only by number). */
export const GrpcCode = { UNKNOWN: 2, INTERNAL: 13, UNAVAILABLE: 14, UNIMPLEMENTED: 12, UNAUTHENTICATED: 16, PERMISSION_DENIED: 7 } as const;

/** gRPC code → HTTP status for the JSON client (499 is the de facto "client closed request"). */
const HTTP_STATUS = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401] as const;

function httpStatusOf(code: number): number {
  return HTTP_STATUS[code] ?? 500;
}

/** A Connect error's `code` string → gRPC code; an unknown name is UNKNOWN (Connect spec: error codes). */
export function codeFromName(name: unknown): number {
  const i = typeof name === "string" ? GRPC_CODE_NAMES.indexOf(name as (typeof GRPC_CODE_NAMES)[number]) : -1;
  return i > 0 ? i : GrpcCode.UNKNOWN;
}

/**
 * The code for an HTTP error without a gRPC status (an intermediary's 502, a server that is not
 * gRPC at all): the table of grpc/doc/http-grpc-status-mapping.md, which Connect's spec repeats.
 */
export function codeFromHttpStatus(status: number): number {
  switch (status) {
    case 400: return GrpcCode.INTERNAL;
    case 401: return GrpcCode.UNAUTHENTICATED;
    case 403: return GrpcCode.PERMISSION_DENIED;
    case 404: return GrpcCode.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GrpcCode.UNAVAILABLE;
    default: return GrpcCode.UNKNOWN;
  }
}

/** The JSON error a client gets for an RPC that failed upstream: the proxy's error shape plus the gRPC code. */
export function rpcErrorResponse(ctx: ProxyContext, code: number, message: string, upstreamHeaders: Headers): Response {
  const status = httpStatusOf(code);
  const name = GRPC_CODE_NAMES[code] ?? "unknown";
  const body = JSON.stringify({ error: name, message: message || name.replaceAll("_", " "), request_id: ctx.requestId, grpc_status: code });
  upstreamHeaders.set("content-type", "application/json");
  upstreamHeaders.set("cache-control", "no-store");
  return new Response(body, { status, headers: upstreamHeaders });
}
