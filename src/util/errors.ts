/**
 * The one error type of the proxy. Errors are data (code, status, source, retryable), so the
 * pipeline can decide on retries and the error phase can render them without guessing.
 */
export type ErrorSource = "client" | "upstream" | "internal";

export interface SwitchyardErrorInit {
  code: string;
  status: number;
  message: string;
  source: ErrorSource;
  retryable?: boolean;
  cause?: unknown;
  /** Extra response headers the error response carries (e.g. x-switchyard-overloaded). */
  headers?: Record<string, string>;
}

export class SwitchyardError extends Error {
  readonly code: string;
  readonly status: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly headers: Record<string, string> | undefined;

  constructor(init: SwitchyardErrorInit) {
    super(init.message, { cause: init.cause });
    this.name = "SwitchyardError";
    this.code = init.code;
    this.status = init.status;
    this.source = init.source;
    this.retryable = init.retryable ?? false;
    this.headers = init.headers;
  }

  /**
   * A response body that failed after its headers: `reason` is the exchange's own (a deadline, the
   * client gone) when it has one; otherwise the socket broke, and the message says where — the
   * body was cut, not the connection refused before answering.
   */
  static fromBody(reason: unknown, e: unknown, detail = ""): SwitchyardError {
    if (reason !== undefined) return SwitchyardError.from(reason);
    const error = SwitchyardError.from(e);
    if (error.code !== "upstream_reset" && error.code !== "upstream_error") return error;
    return new SwitchyardError({
      code: "upstream_reset", status: 502, source: "upstream", retryable: true, cause: e,
      message: `the upstream closed the connection in the middle of the response body${detail}`,
    });
  }

  /** Maps anything thrown while talking to an upstream onto a SwitchyardError. */
  static from(e: unknown): SwitchyardError {
    if (e instanceof SwitchyardError) return e;
    const err = e as { name?: string; code?: string; message?: string } | null | undefined;
    const name = err?.name;
    const code = err?.code;
    if (name === "TimeoutError") return upstreamTimeout("the upstream did not answer in time", e);
    if (name === "AbortError") {
      return new SwitchyardError({
        code: "client_aborted", status: 499, source: "client", message: "the client went away", cause: e,
      });
    }
    if (code === "ECONNREFUSED" || code === "ConnectionRefused") {
      return new SwitchyardError({
        code: "upstream_connect_refused", status: 502, source: "upstream", retryable: true,
        message: "the upstream refused the connection", cause: e,
      });
    }
    if (code === "ECONNRESET" || code === "ConnectionClosed" || code === "EPIPE" || code === "UND_ERR_SOCKET") {
      return new SwitchyardError({
        code: "upstream_reset", status: 502, source: "upstream", retryable: true,
        message: "the upstream closed the connection before answering", cause: e,
      });
    }
    if (code === "ETIMEDOUT") return upstreamTimeout("the upstream connection timed out", e);
    const tls = code === undefined ? undefined : upstreamTlsError(code, err?.message ?? "", e);
    if (tls) return tls;
    return new SwitchyardError({
      code: "upstream_error", status: 502, source: "upstream", retryable: true,
      message: `the upstream request failed${code ? ` (${code})` : ""}`, cause: e,
    });
  }
}

/** Certificate verification failures, by the codes Bun's fetch and WebSocket report (OpenSSL's verify results, node's names). */
const TLS_VERIFY_REASONS: Record<string, string> = {
  ERR_TLS_CERT_ALTNAME_INVALID: "the certificate is not for the server name",
  HOSTNAME_MISMATCH: "the certificate is not for the server name",
  SELF_SIGNED_CERT_IN_CHAIN: "the certificate is not signed by a trusted CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the certificate is self-signed and not trusted",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the certificate is not signed by a trusted CA",
  UNABLE_TO_GET_ISSUER_CERT: "the certificate is not signed by a trusted CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the certificate is not signed by a trusted CA",
  CERT_SIGNATURE_FAILURE: "the certificate's signature does not verify",
  CERT_HAS_EXPIRED: "the certificate has expired",
  CERT_NOT_YET_VALID: "the certificate is not valid yet",
  CERT_REVOKED: "the certificate is revoked",
  CERT_UNTRUSTED: "the certificate is not trusted",
  CERT_REJECTED: "the certificate is rejected",
  INVALID_CA: "a CA certificate in the chain is invalid",
  INVALID_PURPOSE: "the certificate is not for TLS servers",
  PATH_LENGTH_EXCEEDED: "the certificate chain is too long",
};

/** A failed TLS handshake or certificate verification with the upstream (nothing was sent: retried as a connect failure). */
function upstreamTlsError(code: string, message: string, cause: unknown): SwitchyardError | undefined {
  const reason = TLS_VERIFY_REASONS[code];
  if (reason !== undefined) {
    return new SwitchyardError({
      code: "upstream_tls_error", status: 502, source: "upstream", retryable: true, cause,
      message: `the upstream's TLS certificate failed verification: ${reason} (${code})`,
    });
  }
  if (code === "EPROTO" || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_")) {
    return new SwitchyardError({
      code: "upstream_tls_error", status: 502, source: "upstream", retryable: true, cause,
      message: `the TLS handshake with the upstream failed (${code}: ${message.split(". ")[0]}); does it speak TLS, and does it want a client certificate?`,
    });
  }
  return undefined;
}

function upstreamTimeout(message: string, cause: unknown): SwitchyardError {
  return new SwitchyardError({ code: "upstream_timeout", status: 504, source: "upstream", retryable: true, message, cause });
}

export const errors = {
  noRoute: () => new SwitchyardError({ code: "no_route", status: 404, source: "client", message: "no route matches this request" }),
  noEndpoint: (cluster: string) => new SwitchyardError({
    code: "no_healthy_endpoint", status: 503, source: "internal", retryable: true,
    message: `cluster ${cluster} has no endpoint available`,
  }),
  connectTimeout: () => new SwitchyardError({
    code: "upstream_connect_timeout", status: 504, source: "upstream", retryable: true,
    message: "the upstream connection was not established in time",
  }),
  /** RFC 9110 §15: a status is three digits, 1xx–5xx; fetch passes anything (e.g. 999) through. */
  badStatus: (status: number) => new SwitchyardError({
    code: "upstream_bad_status", status: 502, source: "upstream", retryable: true,
    message: `the upstream answered with status ${status}, which is not a valid final HTTP status (200–599)`,
  }),
  requestTimeout: () => new SwitchyardError({
    code: "upstream_timeout", status: 504, source: "upstream", retryable: false,
    message: "the route's request timeout expired",
  }),
  /** Same code as requestTimeout (retried by gateway-error and 5xx alike); the message says which limit fired. */
  tryTimeout: () => new SwitchyardError({
    code: "upstream_timeout", status: 504, source: "upstream", retryable: false,
    message: "the try's per_try_timeout expired",
  }),
  idleTimeout: () => new SwitchyardError({
    code: "idle_timeout", status: 504, source: "upstream", retryable: false,
    message: "no bytes moved in either direction within the idle timeout",
  }),
  badRequest: (message: string) => new SwitchyardError({ code: "bad_request", status: 400, source: "client", message }),
  internal: () => new SwitchyardError({ code: "internal_error", status: 500, source: "internal", message: "the proxy failed to handle this request" }),
  /** The body stalled: what is left of it on the connection is not waited for. */
  clientTimeout: () => refused("client_timeout", 408, "the request body did not arrive in time"),
  tooLarge: (message: string) => new SwitchyardError({ code: "body_too_large", status: 413, source: "client", message }),
  /** A cluster limit (Envoy's circuit-breaker thresholds) was reached: shed load at once. */
  overloaded: (cluster: string, limit: string) => new SwitchyardError({
    code: "overloaded", status: 503, source: "internal", message: `cluster ${cluster} is at its ${limit} limit`,
    headers: { "x-switchyard-overloaded": "true" },
  }),
  circuitOpen: (cluster: string) => new SwitchyardError({
    code: "circuit_open", status: 503, source: "internal", message: `the circuit breaker of cluster ${cluster} is open`,
    headers: { "x-switchyard-overloaded": "true" },
  }),
  notThroughTls: () => new SwitchyardError({ code: "tls_required", status: 403, source: "client", message: "this listener takes requests only through its TLS port" }),
  draining: () => new SwitchyardError({ code: "draining", status: 503, source: "internal", message: "the proxy is shutting down" }),
  // Refusals of the request guard (src/security/guard.ts), before routing. They close the
  // connection: after a request framed in doubt, the next bytes cannot be trusted to start one.
  invalidFraming: (message: string) => refused("invalid_framing", 400, message),
  invalidPath: (message: string) => refused("invalid_path", 400, message),
  invalidHost: (message: string) => refused("bad_request", 400, message),
  invalidHeader: (message: string) => refused("invalid_header", 400, message),
  /** RFC 9110 §15.5.6: a 405 names the methods that are allowed. */
  methodNotAllowed: (method: string) => refused("method_not_allowed", 405, `${method} is not served by this proxy`, { allow: "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" }),
  /** RFC 9110 §9.1 / §15.6.2: a method this proxy does not forward (not one Bun passes on today; see guard.ts). */
  methodNotImplemented: (method: string) => refused("method_not_implemented", 501, `${method} is not a method this proxy forwards`),
  uriTooLong: (max: number) => refused("uri_too_long", 414, `the request target is longer than ${max} bytes`),
  headersTooLarge: (message: string) => refused("headers_too_large", 431, message),
  bodyTooLarge: (max: number) => refused("body_too_large", 413, `the request body is larger than ${max} bytes`),
} as const;

function refused(code: string, status: number, message: string, headers?: Record<string, string>): SwitchyardError {
  return new SwitchyardError({ code, status, source: "client", message, headers: { connection: "close", ...headers } });
}

/** The JSON body every proxy-made error response carries (design.md: Errors). */
export function errorBody(err: SwitchyardError, requestId: string): string {
  return JSON.stringify({ error: err.code, message: err.message, request_id: requestId });
}

/** A proxy-made error response: errorBody as JSON (given when the caller already made it), the request id, never cached. */
export function errorResponse(err: SwitchyardError, requestId: string, body = errorBody(err, requestId)): Response {
  return new Response(body, {
    status: err.status,
    headers: { "content-type": "application/json", "x-request-id": requestId, "cache-control": "no-store", ...err.headers },
  });
}
