/**
 * What the log phase's readers — access log, metrics, spans — read of a request: the request's
 * identity and outcome, kept below the proxy so that observe/ depends on no proxy or runtime
 * module. ProxyContext (proxy/context.ts) extends it; an egress exchange's record fills it too.
 */
import type { SwitchyardError } from "../util/errors.ts";

/** Where a request came in. */
export interface ListenerInfo {
  readonly name: string;
  readonly proto: "http" | "https";
  /** Bun's idle timer for the connection between requests (the listener's idle_timeout, whole seconds). */
  readonly idleSeconds: number;
  /** mTLS listeners: whether the verified client certificate goes upstream as x-forwarded-client-cert. */
  readonly forwardClientCert?: "sanitize" | "set";
}

/** Who the route's auth filter found the caller to be. */
export interface AuthIdentity {
  /** The named provider (config `auth.<name>`) that accepted the credential. */
  provider: string;
  kind: "jwt" | "api_key" | "introspection" | "ext_authz";
  /** `sub` of a token, or the API key's name. */
  subject?: string;
  /** Verified claims (JWT, introspection); absent for API keys. */
  claims?: Readonly<Record<string, unknown>>;
  /** The API key's tier, when the key has one. */
  tier?: string;
}

/** One upstream call made for a request (a composition call, a module's cluster client), as logged. */
export interface CallRecord {
  call: string;
  cluster: string;
  endpoint: string | null;
  status: number | null;
  error: string | null;
  attempts: number;
  ms: number;
  /** Every try, when there was more than one. */
  tries?: { endpoint: string; status: number | null; error: string | null; ms: number }[];
}

/** Why a transform filter passed a body unmapped (filters/transform). */
export type TransformSkip = "not_json" | "encoded" | "partial" | "too_large" | "invalid_json";


/** One upstream try, as logged. */
export interface TryRecord {
  endpoint: string;
  status: number | null;
  error: string | null;
  ms: number;
}

export interface RequestRecord {
  readonly requestId: string;
  readonly listener: ListenerInfo;
  /** The client's HTTP version when not 1.1: "2" (node:http2 engine) or "3" (Bun.serve's QUIC). */
  readonly protocol?: "2" | "3";
  /** A native gRPC call's status (what the client got in grpc-status), once known (proxy/grpc). */
  grpcStatus?: number;
  /** The client: the peer, or for a trusted peer the first untrusted hop of X-Forwarded-For (security/trust.ts). */
  readonly clientIp: string;
  readonly method: string;
  readonly host: string;
  /** Normalized by the request guard (security/path.ts): what routes match and the upstream receives. */
  readonly path: string;
  /** Raw query string without `?` ("" when none). */
  readonly query: string;
  readonly headers: Headers;
  /** performance.now() at arrival. */
  readonly startedAt: number;
  /** The route and cluster as the readers name them (the proxy's carry much more). */
  readonly route?: { readonly name: string; readonly cache?: { readonly cache: { readonly name: string } } };
  readonly cluster?: { readonly name: string };
  readonly endpoint?: { readonly address: string };
  attempt: number;
  /** performance.now() when the upstream request was sent and when its headers came back. */
  upstreamStartedAt?: number;
  upstreamHeadersAt?: number;
  status?: number;
  bytesIn: number;
  bytesOut: number;
  error?: SwitchyardError;
  /** Upstream calls made for this request (composition, custom modules), in the order they ended. */
  calls?: CallRecord[];
  /** One entry per upstream try, in order (logged when there was more than one). */
  tries?: TryRecord[];
  /** Answered by the route's fallback, or by a stale cached copy, instead of an error. */
  fallback?: "static" | "stale";
  /** HIT, STALE, REVALIDATED or MISS, on routes with a cache. */
  cacheStatus?: string;
  /** Set by an auth filter once a credential is accepted (read by authorize and rate_limit). */
  auth?: AuthIdentity;
  /**
   * Bodies a transform filter passed unmapped (no strict option said to refuse them), and why:
   * not_json, encoded, partial, too_large, invalid_json. Logged as `transform_skipped`.
   */
  transformSkipped?: { request?: TransformSkip; response?: TransformSkip };
  /** WAF matches (rule id and where), in the route's waf filter mode. */
  waf?: { mode: "block" | "detect"; matches: { rule: string; where: string }[] };
}
