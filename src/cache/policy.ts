/**
 * RFC 9111 shared-cache semantics, pure: no clock (callers pass `now`, in seconds), no I/O.
 * Section numbers refer to RFC 9111 unless noted.
 */

export type Directives = ReadonlyMap<string, string | true>;

const NONE: Directives = new Map();

/**
 * What a stored response's headers say for every later hit, worked out once per headers object
 * (a refresh replaces the object): its directives, its freshness lifetime, its Date and Age. The
 * hit path then parses nothing of the stored response.
 */
interface StoredFacts {
  readonly directives: Directives;
  readonly lifetime: number;
  readonly heuristicMax: number | undefined;
}
const storedFacts = new WeakMap<Headers, StoredFacts>();

function factsOf(status: number, headers: Headers, heuristicMax: number | undefined): StoredFacts {
  let facts = storedFacts.get(headers);
  if (facts === undefined || facts.heuristicMax !== heuristicMax) {
    facts = { directives: parseCacheControl(headers.get("cache-control")), lifetime: freshnessLifetime(status, headers, heuristicMax), heuristicMax };
    storedFacts.set(headers, facts);
  }
  return facts;
}

/** Date and the first Age of a response (seconds; Date undefined when invalid), once per headers object. */
const ageFacts = new WeakMap<Headers, { date: number | undefined; ageValue: number }>();

function datesOf(headers: Headers): { date: number | undefined; ageValue: number } {
  let facts = ageFacts.get(headers);
  if (facts === undefined) {
    // §5.1: of several Age values (a list, or repeated lines Headers joins with ", ") the first counts.
    const age = headers.get("age");
    const comma = age === null ? -1 : age.indexOf(",");
    facts = { date: httpDate(headers.get("date")), ageValue: deltaSeconds((comma === -1 ? age : age!.slice(0, comma))?.trim()) ?? 0 };
    ageFacts.set(headers, facts);
  }
  return facts;
}

/** Cache-Control (§5.2): comma-separated directives, names case-insensitive, values optionally quoted. */
export function parseCacheControl(header: string | null): Directives {
  if (!header) return NONE;
  const out = new Map<string, string | true>();
  for (const part of header.split(",")) {
    const eq = part.indexOf("=");
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === "") continue;
    let value: string | true = true;
    if (eq !== -1) {
      value = part.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    }
    if (!out.has(name)) out.set(name, value); // §4.2.1: the first of duplicates
  }
  return out;
}

/** A delta-seconds value (§1.2.2); invalid → undefined; very large values are capped at 2^31. */
export function deltaSeconds(value: string | true | undefined): number | undefined {
  if (typeof value !== "string" || !/^\d+$/.test(value)) return undefined;
  return Math.min(Number(value), 2 ** 31);
}

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const MONTH = "(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)";
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";
/** The three forms a recipient must accept (RFC 9110 §5.6.7), all GMT; names matched case-insensitively (robustness). */
const IMF_FIXDATE = new RegExp(`^(?:mon|tue|wed|thu|fri|sat|sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`, "i");
const RFC850_DATE = new RegExp(`^(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, "i");
const ASCTIME_DATE = new RegExp(`^(?:mon|tue|wed|thu|fri|sat|sun) ${MONTH} ( \\d|\\d{2}) ${TIME} (\\d{4})$`, "i");

/**
 * HTTP-date (RFC 9110 §5.6.7) in seconds, or undefined when it is not one: Date.parse would take
 * ISO dates, other zones, "0", and read asctime in local time. A two-digit RFC 850 year below 70
 * is 20xx (the spec's "not more than 50 years ahead" needs a clock; this pivot keeps the function pure).
 */
export function httpDate(value: string | null): number | undefined {
  if (value === null) return undefined;
  const parts = dateParts(value.trim());
  if (parts === undefined) return undefined;
  const [day, month, year, hh, mm, ss] = parts;
  const ms = Date.UTC(year, month, day, hh, mm, ss);
  const d = new Date(ms);
  // Out-of-range parts (31 Feb, 25:00) roll over in Date.UTC: such a date is invalid.
  if (d.getUTCDate() !== day || d.getUTCHours() !== hh || d.getUTCMinutes() !== mm || d.getUTCSeconds() !== ss) return undefined;
  return ms / 1000;
}

/** [day, month index, year, hours, minutes, seconds] of one of the three forms. */
function dateParts(v: string): [number, number, number, number, number, number] | undefined {
  const month = (name: string) => MONTHS.indexOf(name.toLowerCase());
  let m = IMF_FIXDATE.exec(v);
  if (m !== null) return [Number(m[1]), month(m[2]!), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
  m = RFC850_DATE.exec(v);
  if (m !== null) {
    const yy = Number(m[3]);
    return [Number(m[1]), month(m[2]!), yy + (yy < 70 ? 2000 : 1900), Number(m[4]), Number(m[5]), Number(m[6])];
  }
  m = ASCTIME_DATE.exec(v);
  if (m !== null) return [Number(m[2]), month(m[1]!), Number(m[6]), Number(m[3]), Number(m[4]), Number(m[5])];
  return undefined;
}

/** Statuses cacheable by default, i.e. heuristically (RFC 9110 §15.1). */
const HEURISTIC_STATUSES = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);
/** Statuses this cache understands well enough to store (§3: "final and understood"). */
const UNDERSTOOD_STATUSES = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]);

export const CACHEABLE_METHODS = new Set(["GET", "HEAD"]);

export interface Exchange {
  method: string;
  requestHeaders: Headers;
  /**
   * A route's auth filter accepted a credential (wherever it travelled: an API key header, a
   * cookie, a query token): the answer may be that caller's, as with Authorization (§3.5).
   */
  authenticated?: boolean;
  status: number;
  responseHeaders: Headers;
}

/** May a shared cache store this response (§3, §3.5)? */
export function isStorable(x: Exchange): boolean {
  if (!CACHEABLE_METHODS.has(x.method)) return false;
  if (!UNDERSTOOD_STATUSES.has(x.status)) return false;
  const req = parseCacheControl(x.requestHeaders.get("cache-control"));
  const res = parseCacheControl(x.responseHeaders.get("cache-control"));
  if (req.has("no-store") || res.has("no-store") || res.has("private")) return false;
  if (x.responseHeaders.get("vary")?.trim() === "*") return false; // could never be served
  // §3.5: a request with Authorization (or another accepted credential) only if the response explicitly allows sharing.
  if ((x.authenticated === true || x.requestHeaders.has("authorization")) && !(res.has("public") || res.has("must-revalidate") || res.has("s-maxage"))) return false;
  return (
    res.has("public") || res.has("max-age") || res.has("s-maxage") || x.responseHeaders.has("expires") || HEURISTIC_STATUSES.has(x.status)
  );
}

/**
 * Freshness lifetime in seconds (§4.2.1): s-maxage, then max-age (an invalid one: 0), then Expires − Date; otherwise
 * a heuristic (§4.2.2) of 10% of the time since Last-Modified, capped at `heuristicMax`, only for
 * heuristically cacheable statuses. 0 when nothing allows freshness.
 */
export function freshnessLifetime(status: number, headers: Headers, heuristicMax = 86_400): number {
  const cc = parseCacheControl(headers.get("cache-control"));
  // §4.2.1: invalid freshness information (max-age=-1, max-age=1.5) makes the response stale,
  // never a fall-through to Expires or a heuristic.
  if (cc.has("s-maxage")) return deltaSeconds(cc.get("s-maxage")) ?? 0;
  if (cc.has("max-age")) return deltaSeconds(cc.get("max-age")) ?? 0;
  if (headers.has("expires")) {
    const expires = httpDate(headers.get("expires"));
    const date = httpDate(headers.get("date"));
    // §5.3: an invalid Expires (e.g. "0") means already expired.
    if (expires === undefined || date === undefined) return 0;
    return Math.max(0, expires - date);
  }
  if (!HEURISTIC_STATUSES.has(status)) return 0;
  const lastModified = httpDate(headers.get("last-modified"));
  const date = httpDate(headers.get("date"));
  if (lastModified === undefined || date === undefined || lastModified > date) return 0;
  return Math.min(heuristicMax, Math.floor((date - lastModified) / 10));
}

/** What the cache must remember of the exchange to compute ages (§4.2.3). */
export interface AgeFacts {
  /** When the request was sent and the response received, by the cache's clock (seconds). */
  requestTime: number;
  responseTime: number;
  headers: Headers;
}

/** current_age (§4.2.3). */
export function currentAge(f: AgeFacts, now: number): number {
  const dates = datesOf(f.headers);
  const date = dates.date ?? f.responseTime;
  const ageValue = dates.ageValue;
  // Date has whole seconds: against the receipt time's fraction it would add a random 0–1 s of
  // age (a max-age=1 answer would flip between fresh and stale with the sub-second phase).
  const apparentAge = Math.max(0, Math.floor(f.responseTime) - date);
  const responseDelay = f.responseTime - f.requestTime;
  const correctedAgeValue = ageValue + responseDelay;
  const correctedInitialAge = Math.max(apparentAge, correctedAgeValue);
  return correctedInitialAge + (now - f.responseTime);
}

/** Vary (§4.1): do the request's selecting headers match those the stored response was chosen by? */
export function varyMatches(vary: string | null, stored: Headers, incoming: Headers): boolean {
  if (vary === null || vary.trim() === "") return true;
  for (const raw of vary.split(",")) {
    const name = raw.trim().toLowerCase();
    if (name === "") continue;
    if (name === "*") return false;
    if (normalize(stored.get(name)) !== normalize(incoming.get(name))) return false;
  }
  return true;
}

function normalize(value: string | null): string | null {
  return value === null ? null : value.split(",").map((v) => v.trim()).join(",");
}

export interface Stored extends AgeFacts {
  status: number;
}

/** What to do with a stored response for a request (§4, §5.2.1, RFC 5861). */
export type Decision =
  | { use: "fresh"; age: number }
  /** Stale but allowed by the client's max-stale: serve it (with a Warning-free Age). */
  | { use: "stale"; age: number }
  /** Stale within stale-while-revalidate: serve now, revalidate in the background. */
  | { use: "stale-while-revalidate"; age: number }
  | { use: "revalidate"; age: number };

export function decide(request: Headers, stored: Stored, now: number, heuristicMax?: number): Decision {
  const age = currentAge(stored, now);
  const { lifetime, directives: res } = factsOf(stored.status, stored.headers, heuristicMax);
  const requestCc = request.get("cache-control");
  const req = parseCacheControl(requestCc);
  const pragma = requestCc === null ? request.get("pragma") : null;
  const pragmaNoCache = pragma !== null && /(^|,)\s*no-cache\s*(,|$)/i.test(pragma);
  // §5.2.2.4 / §5.2.1.4: no-cache (either side) means validate before every use.
  if (res.has("no-cache") || req.has("no-cache") || pragmaNoCache) return { use: "revalidate", age };
  const reqMaxAge = deltaSeconds(req.get("max-age"));
  if (reqMaxAge !== undefined && age > reqMaxAge) return { use: "revalidate", age };
  const minFresh = deltaSeconds(req.get("min-fresh")) ?? 0;
  if (age < lifetime) return lifetime - age >= minFresh ? { use: "fresh", age } : { use: "revalidate", age };
  // Stale from here on.
  const staleness = age - lifetime;
  const mustRevalidate = res.has("must-revalidate") || res.has("proxy-revalidate") || res.has("s-maxage");
  if (mustRevalidate) return { use: "revalidate", age };
  if (req.has("max-stale")) {
    const limit = deltaSeconds(req.get("max-stale"));
    if (limit === undefined || staleness <= limit) return { use: "stale", age };
  }
  const swr = deltaSeconds(res.get("stale-while-revalidate"));
  if (swr !== undefined && staleness <= swr) return { use: "stale-while-revalidate", age };
  return { use: "revalidate", age };
}

/** May this stale response be served because the upstream failed (RFC 5861 §4)? */
export function staleIfErrorAllows(request: Headers, stored: Stored, now: number, heuristicMax?: number): boolean {
  const { lifetime, directives: res } = factsOf(stored.status, stored.headers, heuristicMax);
  if (res.has("must-revalidate") || res.has("proxy-revalidate") || res.has("s-maxage") || res.has("no-cache")) return false;
  const staleness = currentAge(stored, now) - lifetime;
  const limit = deltaSeconds(parseCacheControl(request.get("cache-control")).get("stale-if-error")) ?? deltaSeconds(res.get("stale-if-error"));
  return limit !== undefined && staleness <= limit;
}

/** Request headers that turn a forward into a revalidation of `stored` (§4.3.1). */
export function revalidationHeaders(stored: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  const etag = stored.get("etag");
  const lastModified = stored.get("last-modified");
  if (etag !== null) out["if-none-match"] = etag;
  if (lastModified !== null) out["if-modified-since"] = lastModified;
  return out;
}

/**
 * Fields a 304 must not overwrite in the stored response (§3.2: they describe the stored body),
 * and Set-Cookie, which is one client's and must never be replayed to others from a shared cache.
 */
const KEEP_ON_304 = new Set(["content-length", "content-encoding", "transfer-encoding", "content-range", "set-cookie"]);

/** The stored headers updated with those of a 304 (§4.3.4). */
export function mergeNotModified(stored: Headers, notModified: Headers): Headers {
  const merged = new Headers(stored);
  for (const [name, value] of notModified) {
    if (!KEEP_ON_304.has(name)) merged.set(name, value);
  }
  return merged;
}

/**
 * Does a 304 describe this stored response (§4.3.4)? Its ETag must match the stored one, else its
 * Last-Modified the stored one; a 304 with neither is taken as an answer to the cache's own
 * validators. A 304 about another representation (the client's own If-None-Match) updates nothing.
 * ETags are compared weakly, so a weak validator the cache sent is recognised when it comes back.
 */
export function notModifiedSelects(stored: Headers, notModified: Headers): boolean {
  const etag = notModified.get("etag");
  if (etag !== null) {
    const storedEtag = stored.get("etag");
    return storedEtag !== null && weakMatch(etag.trim(), storedEtag.trim());
  }
  const lastModified = notModified.get("last-modified");
  if (lastModified !== null) {
    const storedLastModified = httpDate(stored.get("last-modified"));
    return storedLastModified !== undefined && storedLastModified === httpDate(lastModified);
  }
  return true;
}

/** Weak comparison of entity tags (RFC 9110 §8.8.3.2). */
function weakMatch(a: string, b: string): boolean {
  return a.replace(/^W\//, "") === b.replace(/^W\//, "");
}

/**
 * Can the cache answer this conditional request with 304 from `stored` (RFC 9110 §13.1.2, §13.1.3,
 * §13.2.2; RFC 9111 §4.3.2)? If-None-Match wins over If-Modified-Since.
 */
export function notModifiedFor(request: Headers, stored: Headers, status = 200): boolean {
  if (status < 200 || status > 299) return false; // preconditions apply to 2xx only (RFC 9110 §13.2.1)
  const inm = request.get("if-none-match");
  if (inm !== null) {
    if (inm.trim() === "*") return true; // a stored 2xx is a current representation
    const etag = stored.get("etag");
    if (etag === null) return false;
    return inm.split(",").some((tag) => weakMatch(tag.trim(), etag.trim()));
  }
  const imsHeader = request.get("if-modified-since");
  if (imsHeader === null) return false; // (the usual request: nothing of the stored response is parsed)
  const ims = httpDate(imsHeader);
  // RFC 9111 §4.3.2: Last-Modified, else Date (every stored response has one: see serve.ts).
  const lastModified = httpDate(stored.get("last-modified")) ?? httpDate(stored.get("date"));
  return ims !== undefined && lastModified !== undefined && lastModified <= ims;
}

/** Unsafe methods invalidate the target and its Location / Content-Location (§4.4), on a non-error answer. */
export function invalidatedUris(method: string, status: number, target: URL, response: Headers): string[] {
  if (CACHEABLE_METHODS.has(method) || method === "OPTIONS" || method === "TRACE") return [];
  if (status >= 400) return [];
  const out = [target.href];
  for (const name of ["location", "content-location"]) {
    const value = response.get(name);
    if (value === null) continue;
    try {
      const url = new URL(value, target);
      if (url.origin === target.origin) out.push(url.href); // §4.4: same origin only
    } catch {
      // not a URI: nothing to invalidate
    }
  }
  return out;
}
