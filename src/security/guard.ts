/**
 * The request guard: what every request on a proxy listener must pass before routing (and so
 * before any filter or authorization a route has). Compiled once per listener; per request it is a
 * handful of header lookups, one pass over the header names, and one regex test on a clean path.
 *
 * What Bun 1.4.5's own parser does with hostile requests (measured with raw sockets; our checks do
 * not rely on it, they cover what it lets through):
 * - Refuses (400, connection closed): Content-Length together with Transfer-Encoding; differing
 *   or non-numeric Content-Length (`+3`, `0x3`, `1 2`, `3, 5`); any Transfer-Encoding but chunked
 *   (`gzip`, `identity`, `gzip, chunked`, two TE fields); obs-fold; bare CR; bare LF inside the head
 *   (a request line ended by bare LF gets 505); invalid chunk sizes (negative, `0x`, overflowing,
 *   trailing space); chunk data longer than its size; HTTP/1.1 without Host; `OPTIONS *`.
 * - Lets through: a repeated identical Content-Length, merged as `3, 3`; `Transfer-Encoding:
 *   ,chunked`, `chunked,` (read as chunked); several Host fields, merged as `a, b`; Host with
 *   userinfo or empty (then `req.url` is a bare path); CONNECT (`req.url` is `host:port`); TRACE;
 *   `Upgrade: h2c`; header names with `_`; DEL in a value; a fragment in the target. An
 *   absolute-form target is routed by the Host header, its own authority dropped (never dialled).
 * - Limits: request line plus headers over 16,384 bytes → its plain 431 (a longer URL too, not
 *   414); 199 header fields (Host included) → 431. The first request head must arrive within
 *   ~12 s of connecting and later ones within the listener's idle_timeout; trickling bytes does
 *   not extend either.
 * - A GET/HEAD body is read and discarded (never forwarded: fetch re-frames every request).
 * - Methods: only its own list reaches a handler (METHODS below). Any other token — lower or
 *   mixed case (`delete`, `Get`), unknown (`FOO`, `UPDATE`, `FOO-BAR`, 100 letters) — gets the
 *   connection closed without a byte; digits, `_` or other punctuation (`FOO1`, `G!T`, `G@T`) its
 *   plain 400; an 8-bit or NUL byte its plain 505. No hook sees these (not the `error` handler,
 *   not with --insecure-http-parser).
 */
import type { SwitchyardError } from "../util/errors.ts";
import { errors } from "../util/errors.ts";
import { needsNormalization, normalizePath, PathProblem } from "./path.ts";
import type { GuardConfig } from "./schema.ts";
import { type Peer, TrustedProxies } from "./trust.ts";
import { REMOVABLE_REQUEST_FIELDS } from "./header-fields.ts";

/** The request target as routes/proxy.ts splits it. */
export interface Target {
  /** Lower-cased. */
  readonly authority: string;
  readonly path: string;
  readonly query: string;
}

export interface RequestGuard {
  /** The peer, and whether its forwarding headers are believed. */
  peer(address: string, headers: Headers): Peer;
  /**
   * Checks method, Host, target, framing and header limits, drops (or refuses) header names with
   * `_` in place, and normalizes the path: the path to route by, or the error to answer with.
   */
  inspect(request: Pick<Request, "method" | "headers">, target: Target): string | SwitchyardError;
  /**
   * Whether the request inspected last (read synchronously after `inspect`) has none of the
   * fields the upstream request must lose; false when its names were not all visited.
   */
  plainHeaders(): boolean;
}

/**
 * The methods a request may have: true = forwarded; false = refused with 405 wherever it arrives
 * (TRACE echoes credentials back (XST); CONNECT would open tunnels: an egress mode must opt in).
 * Exactly the methods Bun 1.4.5's parser passes to a handler (measured, test/security/bun-parser.test.ts;
 * it closes the connection without a byte on any other token, lower case included). Any other
 * method — should a newer Bun pass it — is answered 501 (RFC 9110 §9.1), not forwarded: Bun's
 * fetch sends a method outside that list as GET (`BREW`, `update`; measured) and upper-cases
 * `delete` and `patch`, so the upstream would see another method than the one routed and
 * authorized.
 */
const METHODS: ReadonlyMap<string, boolean> = new Map([
  ...["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY", "PURGE",
    // WebDAV (RFC 4918, 3253, 3648, 5842), CalDAV (RFC 4791), UPnP (M-SEARCH, NOTIFY, SUBSCRIBE…)
    "ACL", "BIND", "CHECKOUT", "COPY", "LINK", "LOCK", "M-SEARCH", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MOVE", "NOTIFY",
    "PROPFIND", "PROPPATCH", "REBIND", "REPORT", "SEARCH", "SOURCE", "SUBSCRIBE", "UNBIND", "UNLINK", "UNLOCK", "UNSUBSCRIBE",
  ].map((m): [string, boolean] => [m, true]),
  ["TRACE", false],
  ["CONNECT", false],
]);

/** A host[:port] as RFC 3986 allows it (reg-name, IPv4, [IPv6]); anything else, e.g. two Host headers joined by a comma, is refused. */
const VALID_HOST = /^(?:[a-z0-9._~!$&'()*+;=-]+|\[[0-9a-f]*:[0-9a-f:.]*\])(?::\d{1,5})?$/;

/** A lower-cased host[:port] as the guard accepts it (an HTTP/2 `:authority` is checked before it becomes a URL). */
export function isValidAuthority(authority: string): boolean {
  return VALID_HOST.test(authority);
}

const DIGITS = /^\d+$/;

/**
 * One pass over the header fields, reused (requests are inspected one at a time, synchronously).
 * Reading a field of Bun's request costs about as much as visiting it, so the fields the checks
 * need are picked up on the way.
 */
class HeaderTally {
  bytes = 0;
  underscored: string[] | undefined;
  host: string | null = null;
  contentLength: string | null = null;
  transferEncoding: string | null = null;
  /** A field of REMOVABLE_REQUEST_FIELDS was seen (or the names were not visited). */
  removable = true;

  reset(): this {
    this.bytes = 0;
    this.underscored = undefined;
    this.removable = false;
    this.host = this.contentLength = this.transferEncoding = null;
    return this;
  }

  /** forEach callback (`this` is the tally): no closure is made per request. */
  add(this: HeaderTally, value: string, name: string): void {
    this.bytes += name.length + value.length + 4;
    if (REMOVABLE_REQUEST_FIELDS.has(name)) this.removable = true;
    if (name === "host") this.host = value;
    else if (name === "content-length") this.contentLength = value;
    else if (name === "transfer-encoding") this.transferEncoding = value;
    else if (name.includes("_")) (this.underscored ??= []).push(name);
  }

  /** Without a pass: the three fields looked up one by one. */
  lookup(headers: Headers): this {
    this.reset();
    this.removable = true;
    this.host = headers.get("host");
    this.contentLength = headers.get("content-length");
    this.transferEncoding = headers.get("transfer-encoding");
    return this;
  }
}

const tally = new HeaderTally();

export function compileGuard(config: GuardConfig): RequestGuard {
  const trusted = new TrustedProxies(config.trusted_proxies);
  const underscores = config.headers_with_underscores;
  // Bun's own ceiling is 16 KiB; at or above it the byte count could never refuse anything.
  const countBytes = config.max_header_bytes < 16 * 1024;
  const scan = countBytes || underscores !== "allow";
  const paths = config.path_normalization;

  return {
    peer(address, headers) {
      return trusted.peer(address, headers);
    },

    plainHeaders: () => !tally.removable,

    inspect(request, target) {
      tally.removable = true; // until the pass below has visited every name
      const method = request.method;
      const known = METHODS.get(method);
      if (known !== true) return known === false ? errors.methodNotAllowed(method) : errors.methodNotImplemented(method);
      const headers = request.headers;

      // Target: the length limit is nginx's 414; a fragment is never part of one (RFC 9112 §3.2).
      const length = target.path.length + (target.query === "" ? 0 : target.query.length + 1);
      if (length > config.max_url_length) return errors.uriTooLong(config.max_url_length);
      if (target.path.includes("#") || target.query.includes("#")) return errors.invalidPath("the request target has a fragment (#)");

      if (headers.count > config.max_headers) return errors.headersTooLarge(`the request has more than ${config.max_headers} header fields`);
      const seen = scan ? tally.reset() : tally.lookup(headers);
      if (scan) {
        headers.forEach(HeaderTally.prototype.add, seen);
        if (countBytes && seen.bytes + method.length + length + 12 > config.max_header_bytes) {
          return errors.headersTooLarge(`the request head is larger than ${config.max_header_bytes} bytes`);
        }
        const underscored = seen.underscored;
        if (underscored !== undefined && underscores !== "allow") {
          if (underscores === "reject") return errors.invalidHeader(`header names with underscores are refused (${underscored[0]})`);
          for (const name of underscored) headers.delete(name);
        }
      }

      // Host (RFC 9112 §3.2): Bun routes by the first of several and turns a Host it cannot parse
      // (userinfo, empty) into a bare path; an HTTP/1.0 request without Host is the only one allowed.
      const host = target.authority;
      const hostHeader = seen.host;
      if ((host !== "" && !VALID_HOST.test(host)) || (hostHeader !== null && (host === "" || hostHeader.includes(",")))) {
        return errors.invalidHost("the request has a malformed Host header, or more than one (RFC 9112 §3.2)");
      }

      // Framing (RFC 9112 §6.1, §6.3): one chunked coding or one decimal length, never both.
      const te = seen.transferEncoding;
      const cl = seen.contentLength;
      if (te !== null && (cl !== null || te.trim().toLowerCase() !== "chunked")) {
        return errors.invalidFraming(cl !== null ? "the request has both Transfer-Encoding and Content-Length" : "the only Transfer-Encoding accepted is chunked");
      }
      if (cl !== null && !DIGITS.test(cl)) return errors.invalidFraming("the request has more than one Content-Length, or one that is not a number");

      if (!needsNormalization(target.path)) return target.path;
      const normalized = normalizePath(target.path, paths);
      return normalized instanceof PathProblem ? errors.invalidPath(normalized.reason) : normalized;
    },
  };
}
