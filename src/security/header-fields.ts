/**
 * The request and response fields a hop must not pass on as they came (RFC 9110 §7.6.1), and the
 * ones a client could forge. The request guard notes whether a request carries any of them;
 * proxy/headers.ts removes them.
 */

/**
 * Fields that describe one connection, never the message (RFC 9110 §7.6.1, RFC 9112 §6, §7);
 * HTTP2-Settings belongs to an h2c upgrade (RFC 7540 §3.2.1), which is never passed on.
 */
export const HOP_BY_HOP = [
  "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
  "proxy-authorization", "proxy-authenticate", "http2-settings",
];

/**
 * Fields a `Connection` header may not nominate for removal: ones this proxy sets or relies on,
 * and ones the upstream relies on for who is asking. `Connection: x-forwarded-for` or
 * `Connection: authorization` is the hop-by-hop abuse that makes proxies drop them.
 */
export const NOT_NOMINABLE = new Set([
  "host", "content-length", "content-type", "content-encoding", "authorization", "cookie",
  "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-client-cert", "x-request-id",
  "traceparent", "tracestate",
]);

export const HOP_BY_HOP_SET: ReadonlySet<string> = new Set(HOP_BY_HOP);

/** Forwarding fields this proxy does not write; a client could forge them, so they never pass. */
export const FORGEABLE = ["forwarded", "x-forwarded-port", "x-forwarded-server", "x-real-ip"];

/**
 * Fields a front proxy may set to tell the backend another path than the request line's: IIS's
 * URL Rewrite and Symfony read X-Original-URL / X-Rewrite-URL as the path to serve, Spring and
 * others X-Forwarded-Prefix for the URLs they build. From a client they would reach a route's
 * backend with a path no route matched (`GET /public` + `X-Original-URL: /admin`), so only a
 * trusted proxy's pass. The method-override fields (Express's method-override, Google and
 * Microsoft APIs, Symfony) likewise make a POST act as the DELETE a route's methods or an
 * `authorize` rule on methods refused.
 */
export const REWRITE_CLAIMS = ["x-original-url", "x-rewrite-url", "x-forwarded-prefix", "x-http-method-override", "x-http-method", "x-method-override"];

/**
 * Every field name the request side removes from some requests (hop-by-hop, forgeable, rewrite
 * claims, a client certificate claim): a request with none of them (the guard's pass over the
 * names tells, ProxyContext.plainHeaders) needs none of the ~20 deletes.
 */
export const REMOVABLE_REQUEST_FIELDS: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...FORGEABLE, ...REWRITE_CLAIMS, "x-forwarded-client-cert"]);
