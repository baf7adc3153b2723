/**
 * JSON body mapping (issue 7's transformation): rename, remove, set (a constant, a request
 * header, a verified claim) and wrap, on request and response bodies. Only JSON bodies within
 * `max_body` are rewritten; the rest passes untouched, and a body of unknown length is read no
 * further than the limit before it streams on as it came. A rewritten body gets its exact
 * Content-Length (and a weak ETag: the bytes changed).
 */
import type { ProxyContext } from "../../proxy/context.ts";
import { shortest } from "../../proxy/request-body.ts";
import { errors, SwitchyardError } from "../../proxy/errors.ts";
import { clientAborted } from "../../proxy/outcome.ts";
import { INVALID_JSON, isJsonType, parseJson, toJsonBytes } from "../../util/json.ts";
import { readPrefix } from "../../util/read-bounded.ts";
import type { Filter, FilterFactory } from "../filter.ts";
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

/** The mapped body; undefined (the bytes pass untouched) when they are not JSON. */
function mapBody(bytes: Uint8Array, apply: Apply, ctx: ProxyContext): Uint8Array | undefined {
  const doc = parseJson(bytes);
  if (doc === INVALID_JSON) return undefined;
  try {
    return toJsonBytes(apply(doc, ctx));
  } catch {
    return undefined; // e.g. a RangeError from a structure the engine cannot serialise
  }
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? (bytes.buffer as ArrayBuffer)
    : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
}

/** Headers that describe the exact bytes of a representation the mapping changed. */
const DIGESTS = ["content-digest", "repr-digest", "digest", "content-md5"];

export const transformFilter: FilterFactory<TransformFilterConfig> = (config) => {
  const onRequestBody = compileOps(config.request);
  const onResponseBody = compileOps(config.response);
  const max = config.max_body;

  // With strict_request, a body the mapping cannot reach is refused rather than passed on.
  const strict = config.strict_request;
  const tooLarge = () => (strict ? errors.bodyTooLarge(max) : undefined);
  const unsupported = () =>
    strict ? new SwitchyardError({ code: "unsupported_media_type", status: 415, source: "client", message: "this route maps JSON request bodies: send application/json without a content coding" }) : undefined;

  async function transformRequest(ctx: ProxyContext): Promise<SwitchyardError | undefined> {
    const earlier = ctx.requestBody; // an earlier transform's output
    if (earlier === undefined && ctx.request.body === null) return undefined;
    if (earlier instanceof ReadableStream) return tooLarge();
    if (!isJsonType(ctx.headers.get("content-type")) || encoded(ctx.headers)) return unsupported();
    let bytes: Uint8Array;
    if (earlier !== undefined) bytes = new Uint8Array(earlier);
    else {
      if (Number(ctx.headers.get("content-length") ?? Number.NaN) > max) return tooLarge(); // never read
      const timeouts = ctx.route!.config.timeouts;
      try {
        const read = await readPrefix(ctx.request.body!, max, shortest(timeouts.idle, timeouts.request), errors.clientTimeout);
        if ("stream" in read) {
          if (strict) {
            read.stream.cancel().catch(() => {});
            return tooLarge();
          }
          ctx.requestBody = read.stream;
          return undefined;
        }
        bytes = read.whole;
      } catch (e) {
        return e instanceof SwitchyardError ? e : clientAborted();
      }
      ctx.bytesIn = bytes.byteLength;
      // An unsized body read whole here is no longer counted on its way up: the route's limit applies now.
      const limit = ctx.route!.config.max_request_body;
      if (limit !== undefined && bytes.byteLength > limit) return errors.bodyTooLarge(limit);
    }
    const mapped = mapBody(bytes, onRequestBody!, ctx);
    if (mapped === undefined && strict) return errors.badRequest("the request body is not valid JSON");
    ctx.requestBody = toArrayBuffer(mapped ?? bytes);
    return undefined;
  }

  async function transformResponse(ctx: ProxyContext, response: Response): Promise<Response | undefined> {
    const headers = response.headers;
    if (response.status < 200 || response.status > 299 || response.body === null || ctx.method === "HEAD") return undefined;
    if (!isJsonType(headers.get("content-type")) || encoded(headers) || headers.has("content-range")) return undefined;
    if (Number(headers.get("content-length") ?? Number.NaN) > max) return undefined;
    // No timer of its own: the exchange's deadlines abort the upstream body if it stalls.
    const read = await readPrefix(response.body, max, 0, errors.internal);
    const init = { status: response.status, statusText: response.statusText, headers };
    if ("stream" in read) return new Response(read.stream, init);
    const mapped = mapBody(read.whole, onResponseBody!, ctx);
    if (mapped !== undefined) {
      const etag = headers.get("etag");
      if (etag !== null && !etag.startsWith("W/")) headers.set("etag", `W/${etag}`);
      for (const name of DIGESTS) headers.delete(name);
    }
    const body = mapped ?? read.whole;
    headers.set("content-length", String(body.byteLength));
    return new Response(body, init);
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
