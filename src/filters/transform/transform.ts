/**
 * JSON body mapping (issue 7's transformation): rename, remove, set (a constant, a request
 * header, a verified claim) and wrap, on request and response bodies. Only JSON bodies within
 * `max_body` are rewritten; the rest passes untouched (logged and counted as skipped) or, with the
 * strict options, is refused; a body of unknown length is read no further than the limit before it
 * streams on as it came. A JSON body nested deeper than `max_depth` is always refused: passed on,
 * it would look mapped and not be. A rewritten body gets its exact Content-Length (and a weak
 * ETag: the bytes changed).
 */
import type { ProxyContext, TransformSkip, Filter, MatchedContext } from "../../proxy/context.ts";
import { shortest } from "../../proxy/request-body.ts";
import { errors, SwitchyardError } from "../../util/errors.ts";
import { clientAborted } from "../../proxy/outcome.ts";
import { metrics } from "../../observe/metrics.ts";
import { INVALID_JSON, isJsonType, parseJson, TOO_DEEP, toJsonBytes } from "../../util/json.ts";
import { readPrefix } from "../../util/read-bounded.ts";
import type { FilterFactory } from "../filter.ts";
import { compilePath, containers, getAt, parsePath, removeAt, setAt, type Segment } from "./json-path.ts";
import type { TransformFilterConfig, TransformOp } from "./schema.ts";

/** One operation: changes the document in place, or returns a new root (wrap). */
type Apply = (doc: unknown, ctx: ProxyContext) => unknown;

/** Values from the config or from claims may be frozen or shared: every placement gets its own copy. */
function copy(value: unknown): unknown {
  return typeof value === "object" && value !== null ? structuredClone(value) : value;
}

function compileOp(op: TransformOp): Apply {
  switch (op.op) {
    case "rename": {
      const from = compilePath(op.from);
      const to = compilePath(op.to);
      return (doc) => {
        for (const c of containers(doc, from)) {
          const value = getAt(c, from.tail);
          if (value === undefined || !removeAt(c, from.tail)) continue;
          if (!setAt(c, to.tail, value)) setAt(c, from.tail, value); // nowhere to put it: leave it where it was
        }
        return doc;
      };
    }
    case "remove": {
      const path = compilePath(op.path);
      return (doc) => {
        for (const c of containers(doc, path)) removeAt(c, path.tail);
        return doc;
      };
    }
    case "set": {
      const path = compilePath(op.path);
      const source = valueSource(op);
      return (doc, ctx) => {
        const value = source(ctx);
        for (const c of containers(doc, path)) {
          if (value === undefined) removeAt(c, path.tail);
          else setAt(c, path.tail, copy(value));
        }
        return doc;
      };
    }
    case "wrap": {
      const path = compilePath(op.key);
      return (doc) => {
        const root = {};
        setAt(root, path.tail, doc);
        return root;
      };
    }
  }
}

/** Where a `set` takes its value from; undefined = absent (the path is removed instead). */
function valueSource(op: Extract<TransformOp, { op: "set" }>): (ctx: ProxyContext) => unknown {
  if (op.header !== undefined) {
    const name = op.header;
    return (ctx) => ctx.headers.get(name) ?? undefined;
  }
  if (op.claim !== undefined) {
    const claim = parsePath(op.claim) as Segment[];
    return (ctx) => (ctx.auth?.claims === undefined ? undefined : getAt(ctx.auth.claims, claim));
  }
  const value = op.value;
  return () => value;
}

function compileOps(ops: readonly TransformOp[]): Apply | undefined {
  if (ops.length === 0) return undefined;
  const applies = ops.map(compileOp);
  return (doc, ctx) => {
    let root = doc;
    for (const apply of applies) root = apply(root, ctx);
    return root;
  };
}

/** A body in a content coding (gzip…) is not readable JSON here: it passes as it is. */
function encoded(headers: Headers): boolean {
  const coding = headers.get("content-encoding");
  return coding !== null && coding.trim().toLowerCase() !== "identity";
}

/** The mapped body, or why there is none: not JSON (not UTF-8), or nested deeper than `maxDepth` (not parsed). */
function mapBody(bytes: Uint8Array, apply: Apply, ctx: ProxyContext, maxDepth: number): Uint8Array | typeof INVALID_JSON | typeof TOO_DEEP {
  const doc = parseJson(bytes, maxDepth);
  if (doc === INVALID_JSON || doc === TOO_DEEP) return doc;
  try {
    return toJsonBytes(apply(doc, ctx));
  } catch {
    // Within max_depth (≤ 1000) the engine serialises any document; should it ever fail, the
    // body is refused, never passed on unmapped.
    throw errors.internal();
  }
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
}

/** Headers that describe the exact bytes of a representation the mapping changed. */
const DIGESTS = ["content-digest", "repr-digest", "digest", "content-md5"];

export const transformFilter: FilterFactory<TransformFilterConfig> = (config, deps) => {
  const onRequestBody = compileOps(config.request);
  const onResponseBody = compileOps(config.response);
  const max = config.max_body;
  const maxDepth = config.max_depth;
  const route = deps.routeName;

  // A body passed unmapped is never silent: the access log line and a counter say why.
  const skipped = (ctx: ProxyContext, direction: "request" | "response", reason: TransformSkip): undefined => {
    (ctx.transformSkipped ??= {})[direction] = reason;
    metrics.transformSkipped.inc([route, direction, reason]);
    return undefined;
  };
  // A JSON body too deep to map is refused in every mode: valid JSON to whoever reads it next.
  const tooDeep = () =>
    new SwitchyardError({ code: "json_too_deep", status: 400, source: "client", message: `the JSON request body nests deeper than ${maxDepth} levels (this route's transform max_depth)` });
  const answerTooDeep = () =>
    new SwitchyardError({ code: "upstream_response_too_deep", status: 502, source: "upstream", message: `the upstream's JSON answer nests deeper than ${maxDepth} levels (this route's transform max_depth): it cannot be mapped` });

  // With strict_request, a request body the mapping cannot reach is refused rather than passed on.
  const strict = config.strict_request;
  const tooLarge = (ctx: ProxyContext) => (strict ? errors.bodyTooLarge(max) : skipped(ctx, "request", "too_large"));
  const unsupported = (ctx: ProxyContext, reason: "not_json" | "encoded") =>
    strict
      ? new SwitchyardError({ code: "unsupported_media_type", status: 415, source: "client", message: "this route maps JSON request bodies: send application/json without a content coding" })
      : skipped(ctx, "request", reason);

  async function transformRequest(ctx: MatchedContext): Promise<SwitchyardError | undefined> {
    const earlier = ctx.requestBody; // an earlier transform's output
    if (earlier === undefined && ctx.request.body === null) return undefined;
    if (earlier instanceof ReadableStream) return tooLarge(ctx);
    if (!isJsonType(ctx.headers.get("content-type"))) return unsupported(ctx, "not_json");
    if (encoded(ctx.headers)) return unsupported(ctx, "encoded");
    let bytes: Uint8Array;
    if (earlier !== undefined) bytes = new Uint8Array(earlier);
    else {
      if (Number(ctx.headers.get("content-length") ?? Number.NaN) > max) return tooLarge(ctx); // never read
      const timeouts = ctx.route.config.timeouts;
      try {
        const read = await readPrefix(ctx.request.body!, max, shortest(timeouts.idle, timeouts.request), errors.clientTimeout);
        if ("stream" in read) {
          if (strict) read.stream.cancel().catch(() => {});
          else ctx.requestBody = read.stream; // what was read, then the rest, as it came
          return tooLarge(ctx);
        }
        bytes = read.whole;
      } catch (e) {
        return e instanceof SwitchyardError ? e : clientAborted();
      }
      ctx.bytesIn = bytes.byteLength;
      // An unsized body read whole here is no longer counted on its way up: the route's limit applies now.
      const limit = ctx.route.config.max_request_body;
      if (limit !== undefined && bytes.byteLength > limit) return errors.bodyTooLarge(limit);
    }
    const mapped = mapBody(bytes, onRequestBody!, ctx, maxDepth);
    if (mapped === TOO_DEEP) return tooDeep();
    if (mapped === INVALID_JSON) {
      if (strict) return errors.badRequest("the request body is not valid JSON (or not UTF-8)");
      skipped(ctx, "request", "invalid_json");
    }
    ctx.requestBody = toArrayBuffer(mapped === INVALID_JSON ? bytes : mapped);
    return undefined;
  }

  // With strict_response, a 2xx answer the mapping cannot reach is refused (502) rather than passed on.
  const strictResponse = config.strict_response;
  const unmappable = (ctx: ProxyContext, body: ReadableStream, reason: Exclude<TransformSkip, "too_large">, why: string): undefined => {
    if (!strictResponse) return skipped(ctx, "response", reason);
    if (!body.locked) body.cancel().catch(() => {});
    throw new SwitchyardError({ code: "upstream_bad_response", status: 502, source: "upstream", message: `the upstream's answer ${why}: this route maps JSON answers (strict_response)` });
  };
  const answerTooLarge = (ctx: ProxyContext, body: ReadableStream): undefined => {
    if (!strictResponse) return skipped(ctx, "response", "too_large");
    body.cancel().catch(() => {});
    throw new SwitchyardError({ code: "upstream_response_too_large", status: 502, source: "upstream", message: `the upstream's answer is larger than ${max} bytes (this route's transform max_body)` });
  };

  async function transformResponse(ctx: ProxyContext, response: Response): Promise<Response | undefined> {
    const headers = response.headers;
    if (response.status < 200 || response.status > 299 || response.body === null || ctx.method === "HEAD") return undefined;
    const length = Number(headers.get("content-length") ?? Number.NaN);
    if (length === 0) return undefined; // nothing to map
    const type = headers.get("content-type");
    const body = response.body;
    if (!isJsonType(type)) return unmappable(ctx, body, "not_json", `is not JSON (${type ?? "no content type"})`);
    if (encoded(headers)) return unmappable(ctx, body, "encoded", `has a content coding (${headers.get("content-encoding")})`);
    if (headers.has("content-range")) return unmappable(ctx, body, "partial", "is a partial body (Content-Range)");
    if (length > max) return answerTooLarge(ctx, body);
    // No timer of its own: the exchange's deadlines abort the upstream body if it stalls.
    const read = await readPrefix(body, max, 0, errors.internal);
    const init = { status: response.status, statusText: response.statusText, headers };
    if ("stream" in read) {
      answerTooLarge(ctx, read.stream);
      return new Response(read.stream, init);
    }
    const mapped = read.whole.byteLength === 0 ? read.whole : mapBody(read.whole, onResponseBody!, ctx, maxDepth);
    if (mapped === TOO_DEEP) throw answerTooDeep();
    if (mapped === INVALID_JSON) unmappable(ctx, body, "invalid_json", "is not valid JSON");
    else if (mapped !== read.whole) {
      const etag = headers.get("etag");
      if (etag !== null && !etag.startsWith("W/")) headers.set("etag", `W/${etag}`);
      for (const name of DIGESTS) headers.delete(name);
    }
    const out = mapped === INVALID_JSON ? read.whole : mapped;
    headers.set("content-length", String(out.byteLength));
    return new Response(out, init);
  }

  return {
    name: "transform",
    onRequest: onRequestBody && transformRequest,
    // An encoded answer passes unmapped: were the client's Accept-Encoding passed on, asking for
    // gzip would be enough to get the fields a response op removes. The client's compression is
    // the proxy's own (after the mapping).
    onUpstreamRequest: onResponseBody && ((_ctx: ProxyContext, headers: Headers) => headers.set("accept-encoding", "identity")),
    onResponse: onResponseBody && transformResponse,
  } satisfies Filter;
};
