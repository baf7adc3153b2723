import type { Server } from "bun";
import type { Endpoint, Cluster } from "../upstream/cluster.ts";
import type { Runtime, CompiledRoute } from "../runtime/build.ts";
import type { CacheState } from "../cache/serve.ts";
import type { ServerSpan } from "../observe/tracing.ts";
import type { SwitchyardError } from "../util/errors.ts";
import type { RpcCall } from "./transcode/transcoder.ts";
import type { ClientIdentity } from "../security/client-identity.ts";

/** What the pipeline calls on the server a request came through: Bun.serve, or the HTTP/2 engine's stand-in (server/h2/engine.ts). */
export type RequestServer = Pick<Server<unknown>, "requestIP" | "timeout" | "upgrade">;

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

/** Per-request state carried through the phases (design.md: one typed context, no bags). */
export interface ProxyContext {
  readonly requestId: string;
  /** Sent upstream: the caller's, or (tracing on) one naming this request's span; an upstream try sends its own client span's. */
  readonly traceparent: string;
  /** This request's server span, when tracing is on and the trace is sampled. */
  readonly span?: ServerSpan;
  /** The runtime this request started on; a reload never changes it mid-request. */
  readonly runtime: Runtime;
  readonly request: Request;
  readonly server: RequestServer;
  readonly listener: ListenerInfo;
  /** The client's HTTP version when not 1.1: "2" (node:http2 engine) or "3" (Bun.serve's QUIC). */
  readonly protocol?: "2" | "3";
  /** The TCP peer's address. */
  readonly peerIp: string;
  /** The peer is one of the listener's trusted_proxies: its X-Forwarded-*, X-Request-Id and X-Forwarded-Client-Cert are believed. */
  readonly trustedPeer: boolean;
  /** The client: the peer, or for a trusted peer the first untrusted hop of X-Forwarded-For (security/trust.ts). */
  readonly clientIp: string;
  readonly method: string;
  readonly host: string;
  /** Normalized by the request guard (security/path.ts): what routes match and the upstream receives. */
  readonly path: string;
  /** Raw query string without `?` ("" when none). */
  readonly query: string;
  readonly headers: Headers;
  /**
   * The guard saw none of the fields the upstream request must lose (hop-by-hop, forgeable,
   * rewrite claims: headers.ts REMOVABLE_REQUEST_FIELDS), so there is nothing to delete. Unset: unknown.
   */
  readonly plainHeaders?: boolean;
  /** performance.now() at arrival. */
  readonly startedAt: number;

  route?: CompiledRoute;
  cluster?: Cluster;
  endpoint?: Endpoint;
  attempt: number;
  readonly triedEndpoints: Set<Endpoint>;
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
  tries?: { endpoint: string; status: number | null; error: string | null; ms: number }[];
  /** Status of the answer whose outlier report waits for its body to end (0 or unset: none). */
  deferredReport?: number;
  /** The request counts in its cluster's in-flight total (for the retry budget) until logged. */
  countedInCluster?: boolean;
  /** Counted in its cluster's max_requests limit (released by the log phase). */
  limitAdmitted?: boolean;
  /** Holds one of its cluster's max_connections slots. */
  connectionHeld?: boolean;
  /** Admitted by the cluster's breaker ("probe": one of the half-open probes); its outcome is recorded at the end. */
  breakerAdmission?: "yes" | "probe";
  /** Answered by the route's fallback, or by a stale cached copy, instead of an error. */
  fallback?: "static" | "stale";
  /** Lets followers of a coalesced GET go upstream themselves if this leader ends without sharing. */
  coalesceAbandon?: () => void;
  /** Forgets this request's Idempotency-Key claim unless its answer was recorded (log phase). */
  idempotencyAbandon?: () => void;
  /** Held while this request leads a collapsed miss; released once its answer is stored (or cannot be). */
  collapseRelease?: () => void;
  /** The cache store took over releasing the collapse (it does so when the entry is written). */
  collapseDeferred?: boolean;
  /** HIT, STALE, REVALIDATED or MISS, on routes with a cache. */
  cacheStatus?: string;
  /** Headers added to the upstream request (a cache revalidation's validators). */
  upstreamExtraHeaders?: Record<string, string>;
  /** Served stale within stale-while-revalidate: refresh this entry in the background. */
  backgroundRevalidate?: CacheState;
  /** A retry of this request holds a place in the cluster's retry budget. */
  retryHeld?: boolean;
  /** The verified client certificate, on an mTLS listener. */
  clientCert?: ClientIdentity;
  /** Set by an auth filter once a credential is accepted (read by authorize and rate_limit). */
  auth?: AuthIdentity;
  /** On a grpc_transcode route: the RPC the JSON request became (what every try sends). */
  rpc?: RpcCall;
  /** Query parameters left off the upstream URL (a credential an auth filter strips). */
  upstreamQueryRemove?: string[];
  /**
   * RateLimit-Policy and RateLimit values (draft-ietf-httpapi-ratelimit-headers) for the response,
   * from the route's rate_limit filters; `addedBy` is the filter that adds them (the last to merge).
   */
  rateLimit?: { policy: string; state: string; addedBy: object };
  /**
   * Bodies a transform filter passed unmapped (no strict option said to refuse them), and why:
   * not_json, encoded, partial, too_large, invalid_json. Logged as `transform_skipped`.
   */
  transformSkipped?: { request?: TransformSkip; response?: TransformSkip };
  /** WAF matches (rule id and where), in the route's waf filter mode. */
  waf?: { mode: "block" | "detect"; matches: { rule: string; where: string }[] };
  /**
   * The request body as a filter read it (and maybe rewrote it): sent upstream instead of the
   * client's stream — whole (kept for retries too), or a stream of what was read and the rest.
   */
  requestBody?: ArrayBuffer | ReadableStream<Uint8Array>;
  /** A native gRPC call's status (what the client got in grpc-status), once known (proxy/grpc). */
  grpcStatus?: number;
  /** Set by the log phase; it runs exactly once. */
  logged: boolean;
}
