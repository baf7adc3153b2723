/** RFC 9111, rule by rule: table-driven tests of the pure cache policy. */
import { describe, expect, test } from "bun:test";
import {
  currentAge, decide, freshnessLifetime, httpDate, invalidatedUris, isStorable, mergeNotModified, notModifiedFor, notModifiedSelects,
  parseCacheControl, revalidationHeaders, staleIfErrorAllows, varyMatches,
} from "../../src/cache/policy.ts";

const H = (h: Record<string, string> = {}) => new Headers(h);
const date = (s: number) => new Date(s * 1000).toUTCString();
const T = 1_700_000_000; // a fixed "now", in seconds

describe("Cache-Control parsing (§5.2)", () => {
  test.each([
    ["max-age=60", "max-age", "60"],
    ['max-age="60"', "max-age", "60"],
    ["Public, MAX-AGE=5", "max-age", "5"],
    ["no-cache", "no-cache", true],
    ["max-age=1, max-age=2", "max-age", "1"],
  ] as const)("%s → %s", (header, name, value) => {
    expect(parseCacheControl(header).get(name)).toBe(value);
  });
});

describe("HTTP-date (RFC 9110 §5.6.7)", () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
  test.each([
    ["IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", t],
    ["obsolete RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT", t],
    ["obsolete RFC 850, year 35 is 2035", "Tuesday, 06-Nov-35 08:49:37 GMT", Date.UTC(2035, 10, 6, 8, 49, 37) / 1000],
    ["asctime is GMT, not local time", "Sun Nov  6 08:49:37 1994", t],
    ["asctime, two-digit day", "Sun Nov 16 08:49:37 1994", t + 10 * 86_400],
    ["0 (§5.3: invalid)", "0", undefined],
    ["-1", "-1", undefined],
    ["ISO 8601", "2099-01-01", undefined],
    ["a zone other than GMT", "Thu, 01 Jan 2099 00:00:00 UTC", undefined],
    ["a day that does not exist", "Thu, 31 Feb 2099 00:00:00 GMT", undefined],
    ["an hour that does not exist", "Thu, 01 Jan 2099 25:00:00 GMT", undefined],
    ["trailing garbage", "Sun, 06 Nov 1994 08:49:37 GMT x", undefined],
  ] as const)("%s", (_, value, want) => {
    // A zone west of GMT, so a parse in local time would show.
    const tz = process.env.TZ;
    process.env.TZ = "America/New_York";
    try {
      expect(httpDate(value)).toBe(want);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });
});

describe("storable (§3, §3.5)", () => {
  const ok = (over: Partial<{ method: string; req: Record<string, string>; status: number; res: Record<string, string> }> = {}) =>
    isStorable({ method: over.method ?? "GET", requestHeaders: H(over.req), status: over.status ?? 200, responseHeaders: H(over.res ?? { "cache-control": "max-age=60" }) });
  test.each([
    ["GET with max-age", {}, true],
    ["HEAD", { method: "HEAD" }, true],
    ["POST", { method: "POST" }, false],
    ["response no-store", { res: { "cache-control": "no-store, max-age=60" } }, false],
    ["request no-store", { req: { "cache-control": "no-store" } }, false],
    ["private (a shared cache)", { res: { "cache-control": "private, max-age=60" } }, false],
    ["Vary: *", { res: { "cache-control": "max-age=60", vary: "*" } }, false],
    ["Authorization without public", { req: { authorization: "Bearer x" } }, false],
    ["Authorization with public", { req: { authorization: "Bearer x" }, res: { "cache-control": "public, max-age=60" } }, true],
    ["Authorization with s-maxage", { req: { authorization: "Bearer x" }, res: { "cache-control": "s-maxage=60" } }, true],
    ["Authorization with must-revalidate", { req: { authorization: "Bearer x" }, res: { "cache-control": "must-revalidate, max-age=60" } }, true],
    ["200 without freshness info (heuristic)", { res: {} }, true],
    ["302 without freshness info", { status: 302, res: {} }, false],
    ["302 with max-age", { status: 302 }, true],
    ["Expires only", { status: 302, res: { expires: date(T + 60) } }, true],
    ["500", { status: 500 }, false],
    ["206 (ranges not stored)", { status: 206 }, false],
    ["404 heuristic", { status: 404, res: {} }, true],
  ] as const)("%s", (_, over, want) => {
    expect(ok(over as never)).toBe(want);
  });
});

describe("freshness lifetime (§4.2.1, §4.2.2)", () => {
  test.each([
    ["s-maxage beats max-age", { "cache-control": "max-age=10, s-maxage=20" }, 200, 20],
    ["max-age beats Expires", { "cache-control": "max-age=10", date: date(T), expires: date(T + 100) }, 200, 10],
    ["Expires − Date", { date: date(T), expires: date(T + 100) }, 200, 100],
    ["invalid Expires = already expired", { date: date(T), expires: "0" }, 200, 0],
    ["heuristic: 10% of Date − Last-Modified", { date: date(T), "last-modified": date(T - 1000) }, 200, 100],
    ["heuristic capped", { date: date(T), "last-modified": date(T - 10_000_000) }, 200, 86_400],
    ["no heuristic for 302", { date: date(T), "last-modified": date(T - 1000) }, 302, 0],
    ["nothing at all", {}, 200, 0],
    ["§5.3: an Expires not in HTTP-date form is in the past", { date: date(T), expires: "2099-01-01" }, 200, 0],
    // §5.3: with max-age present Expires is ignored; §4.2.1: invalid freshness information is stale.
    ["invalid max-age: stale, Expires ignored", { "cache-control": "max-age=abc", date: date(T), expires: date(T + 30) }, 200, 0],
    ["negative max-age: stale, no heuristic", { "cache-control": "max-age=-1", date: date(T), "last-modified": date(T - 1000) }, 200, 0],
    ["fractional max-age: stale", { "cache-control": "max-age=1.5", date: date(T), "last-modified": date(T - 1000) }, 200, 0],
    ["invalid s-maxage: stale, max-age not used", { "cache-control": "max-age=60, s-maxage=x" }, 200, 0],
  ] as const)("%s", (_, headers, status, want) => {
    expect(freshnessLifetime(status, H(headers))).toBe(want);
  });
});

describe("age (§4.2.3)", () => {
  test("the larger of apparent age and Age + response delay, plus time in cache", () => {
    // Date 10 s before receipt; Age 3; request took 2 s; 5 s in cache.
    const facts = { requestTime: T - 2, responseTime: T, headers: H({ date: date(T - 10), age: "3" }) };
    expect(currentAge(facts, T + 5)).toBe(15); // max(10, 3 + 2) + 5
    const fresh = { requestTime: T - 2, responseTime: T, headers: H({ date: date(T), age: "30" }) };
    expect(currentAge(fresh, T)).toBe(32);
  });

  test("the receipt time's fraction of a second adds no apparent age (Date has whole seconds)", () => {
    const facts = { requestTime: T + 0.9, responseTime: T + 0.9, headers: H({ date: date(T) }) };
    expect(currentAge(facts, T + 0.9)).toBe(0);
  });

  test("several Age values: the first counts (§5.1)", () => {
    const facts = (age: string) => ({ requestTime: T, responseTime: T, headers: H({ date: date(T), age }) });
    expect(currentAge(facts("7200, 0"), T)).toBe(7200);
    expect(currentAge(facts("7200,0, 5"), T)).toBe(7200);
    expect(currentAge(facts("x, 7200"), T)).toBe(0); // an invalid first value: ignored
  });
});

describe("serving a stored response (§4, §5.2.1, RFC 5861)", () => {
  const stored = (res: Record<string, string>, ageAt = 0) => ({ status: 200, requestTime: T - ageAt, responseTime: T - ageAt, headers: H({ date: date(T - ageAt), ...res }) });
  test.each([
    ["fresh", { "cache-control": "max-age=60" }, 10, {}, "fresh"],
    ["stale", { "cache-control": "max-age=60" }, 100, {}, "revalidate"],
    ["response no-cache", { "cache-control": "no-cache, max-age=60" }, 0, {}, "revalidate"],
    ["request no-cache", { "cache-control": "max-age=60" }, 0, { "cache-control": "no-cache" }, "revalidate"],
    ["Pragma: no-cache without Cache-Control", { "cache-control": "max-age=60" }, 0, { pragma: "no-cache" }, "revalidate"],
    ["request max-age=5 on a 10 s old response", { "cache-control": "max-age=60" }, 10, { "cache-control": "max-age=5" }, "revalidate"],
    ["request min-fresh=55 with 50 s left → not fresh enough", { "cache-control": "max-age=60" }, 10, { "cache-control": "min-fresh=55" }, "revalidate"],
    ["request min-fresh=20 with 50 s left", { "cache-control": "max-age=60" }, 10, { "cache-control": "min-fresh=20" }, "fresh"],
    ["max-stale (no value) accepts any staleness", { "cache-control": "max-age=60" }, 1000, { "cache-control": "max-stale" }, "stale"],
    ["max-stale=10 accepts 5 s stale", { "cache-control": "max-age=60" }, 65, { "cache-control": "max-stale=10" }, "stale"],
    ["max-stale=10 refuses 40 s stale", { "cache-control": "max-age=60" }, 100, { "cache-control": "max-stale=10" }, "revalidate"],
    ["must-revalidate overrides max-stale", { "cache-control": "max-age=60, must-revalidate" }, 65, { "cache-control": "max-stale" }, "revalidate"],
    ["proxy-revalidate too (shared cache)", { "cache-control": "max-age=60, proxy-revalidate" }, 65, { "cache-control": "max-stale" }, "revalidate"],
    ["s-maxage implies proxy-revalidate", { "cache-control": "s-maxage=60" }, 65, { "cache-control": "max-stale" }, "revalidate"],
    ["stale-while-revalidate window", { "cache-control": "max-age=60, stale-while-revalidate=30" }, 80, {}, "stale-while-revalidate"],
    ["past stale-while-revalidate", { "cache-control": "max-age=60, stale-while-revalidate=30" }, 100, {}, "revalidate"],
  ] as const)("%s", (_, res, ageAt, req, want) => {
    expect(decide(H(req), stored(res, ageAt), T).use).toBe(want);
  });

  test("stale-if-error: within the window from the response or the request; never with must-revalidate", () => {
    expect(staleIfErrorAllows(H(), stored({ "cache-control": "max-age=60, stale-if-error=100" }, 120), T)).toBe(true);
    expect(staleIfErrorAllows(H(), stored({ "cache-control": "max-age=60, stale-if-error=30" }, 120), T)).toBe(false);
    expect(staleIfErrorAllows(H({ "cache-control": "stale-if-error=600" }), stored({ "cache-control": "max-age=60" }, 120), T)).toBe(true);
    expect(staleIfErrorAllows(H(), stored({ "cache-control": "max-age=60, stale-if-error=100, must-revalidate" }, 120), T)).toBe(false);
    expect(staleIfErrorAllows(H(), stored({ "cache-control": "max-age=60" }, 120), T)).toBe(false);
  });
});

describe("Vary (§4.1)", () => {
  test.each([
    ["no Vary", null, {}, {}, true],
    ["same value", "accept-encoding", { "accept-encoding": "gzip" }, { "accept-encoding": "gzip" }, true],
    ["different value", "accept-encoding", { "accept-encoding": "gzip" }, { "accept-encoding": "br" }, false],
    ["absent on both", "x-a", {}, {}, true],
    ["absent on one", "x-a", { "x-a": "1" }, {}, false],
    ["whitespace normalized", "accept", { accept: "a,b" }, { accept: "a, b" }, true],
    ["several headers", "x-a, x-b", { "x-a": "1", "x-b": "2" }, { "x-a": "1", "x-b": "3" }, false],
    ["Vary: * never matches", "*", {}, {}, false],
  ] as const)("%s", (_, vary, stored, incoming, want) => {
    expect(varyMatches(vary, H(stored), H(incoming))).toBe(want);
  });
});

describe("validation (§4.3)", () => {
  test("revalidation sends If-None-Match and If-Modified-Since from the stored validators", () => {
    expect(revalidationHeaders(H({ etag: '"v1"', "last-modified": date(T) }))).toEqual({ "if-none-match": '"v1"', "if-modified-since": date(T) });
    expect(revalidationHeaders(H())).toEqual({});
  });

  test("a 304 updates the stored headers, but not those describing the stored body", () => {
    const merged = mergeNotModified(H({ etag: '"v1"', "cache-control": "max-age=10", "content-length": "5", "x-old": "1" }), H({ "cache-control": "max-age=60", date: date(T), "content-length": "0" }));
    expect(merged.get("cache-control")).toBe("max-age=60");
    expect(merged.get("content-length")).toBe("5");
    expect(merged.get("x-old")).toBe("1");
    expect(merged.get("etag")).toBe('"v1"');
  });

  test.each([
    ["same ETag", { etag: '"v1"' }, { etag: '"v1"' }, true],
    ["same weak ETag", { etag: 'W/"v1"' }, { etag: 'W/"v1"' }, true],
    ["another ETag (the client's own validator)", { etag: '"v1"' }, { etag: '"v2"' }, false],
    ["an ETag the stored response lacks", {}, { etag: '"v2"' }, false],
    ["same Last-Modified", { "last-modified": date(T) }, { "last-modified": date(T) }, true],
    ["another Last-Modified", { "last-modified": date(T) }, { "last-modified": date(T + 10) }, false],
    ["no validator in the 304", { etag: '"v1"' }, {}, true],
  ] as const)("a 304 selects the stored response (§4.3.4): %s", (_, stored, notModified, want) => {
    expect(notModifiedSelects(H(stored), H(notModified))).toBe(want);
  });

  test.each([
    ["If-None-Match matching", { "if-none-match": '"a", "v1"' }, { etag: '"v1"' }, true],
    ["weak comparison", { "if-none-match": 'W/"v1"' }, { etag: '"v1"' }, true],
    ["If-None-Match not matching", { "if-none-match": '"v2"' }, { etag: '"v1"' }, false],
    ["If-None-Match: *", { "if-none-match": "*" }, { etag: '"v1"' }, true],
    ["If-Modified-Since after Last-Modified", { "if-modified-since": date(T) }, { "last-modified": date(T - 10) }, true],
    ["If-Modified-Since before Last-Modified", { "if-modified-since": date(T - 20) }, { "last-modified": date(T - 10) }, false],
    // §4.3.2: without Last-Modified the stored Date stands in (a Date-less answer is given one when stored).
    ["If-Modified-Since, no Last-Modified, Date before it", { "if-modified-since": date(T) }, { date: date(T - 10) }, true],
    ["If-Modified-Since, no Last-Modified, Date after it", { "if-modified-since": date(T - 20) }, { date: date(T - 10) }, false],
    // RFC 9110 §13.1.2: "*" is false whenever a current representation exists, with or without an ETag.
    ["If-None-Match: * and no ETag", { "if-none-match": "*" }, {}, true],
    ["If-None-Match wins over If-Modified-Since", { "if-none-match": '"v2"', "if-modified-since": date(T) }, { etag: '"v1"', "last-modified": date(T - 10) }, false],
  ] as const)("answer 304 from cache: %s", (_, req, stored, want) => {
    expect(notModifiedFor(H(req), H(stored))).toBe(want);
  });
});

describe("invalidation (§4.4)", () => {
  const target = new URL("http://shop.example/items/7");
  test.each([
    ["POST 201 with Location", "POST", 201, { location: "/items/8" }, ["http://shop.example/items/7", "http://shop.example/items/8"]],
    ["DELETE 204", "DELETE", 204, {}, ["http://shop.example/items/7"]],
    ["PUT with Content-Location", "PUT", 200, { "content-location": "/items/7?v=2" }, ["http://shop.example/items/7", "http://shop.example/items/7?v=2"]],
    ["another origin's Location is ignored", "POST", 201, { location: "http://evil.example/x" }, ["http://shop.example/items/7"]],
    ["an error answer invalidates nothing", "POST", 500, {}, []],
    ["GET invalidates nothing", "GET", 200, {}, []],
  ] as const)("%s", (_, method, status, headers, want) => {
    expect(invalidatedUris(method, status, target, H(headers))).toEqual([...want]);
  });
});
