import { z } from "zod";
import { SizeSchema, TokenSchema } from "../../config/primitives.ts";
import { parsePath } from "./json-path.ts";

/** A JSONPath-like dotted path (`user.name`, `items[0].id`, `items[*].secret`, `$.a`, `["odd.key"]`). */
export const JsonPathSchema = z.string().superRefine((text, ctx) => {
  const parsed = parsePath(text);
  if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: `invalid path "${text}": ${parsed}` });
  else if ("any" in parsed[parsed.length - 1]!) ctx.addIssue({ code: "custom", message: `path "${text}" cannot end with a wildcard` });
});

/** The part of a path up to its last wildcard (empty when it has none). */
function wildcardPrefix(text: string): string {
  const parsed = parsePath(text);
  if (typeof parsed === "string") return "";
  let last = -1;
  parsed.forEach((s, i) => {
    if ("any" in s) last = i;
  });
  return JSON.stringify(parsed.slice(0, last + 1));
}

const RenameSchema = z
  .strictObject({
    op: z.literal("rename"),
    /** The value moved (absent: nothing happens). */
    from: JsonPathSchema,
    /** Where it goes (missing objects on the way are created). With wildcards, both paths must share everything up to the last one. */
    to: JsonPathSchema,
  })
  .refine((o) => wildcardPrefix(o.from) === wildcardPrefix(o.to), { message: "from and to must be the same up to their last wildcard (e.g. items[*].id → items[*].item_id)", path: ["to"] });

const RemoveSchema = z.strictObject({
  op: z.literal("remove"),
  path: JsonPathSchema,
});

const SetSchema = z
  .strictObject({
    op: z.literal("set"),
    path: JsonPathSchema,
    /** A constant (any JSON value). */
    value: z.json().optional(),
    /** The value of this request header (a string). */
    header: TokenSchema.optional(),
    /** A claim of the caller's verified credential (set by an auth filter earlier in the list), as a path into the claims: `sub`, `org.id`. */
    claim: JsonPathSchema.refine((p) => !p.includes("*"), "a claim path has no wildcards").optional(),
  })
  .refine((o) => [o.value, o.header, o.claim].filter((v) => v !== undefined).length === 1, { message: "give exactly one of value, header or claim" });

const WrapSchema = z.strictObject({
  op: z.literal("wrap"),
  /** The body is put under this key (or path of keys): `data` turns `[1,2]` into `{"data":[1,2]}`. */
  key: JsonPathSchema.refine((p) => !/[[*]/.test(p), "wrap takes keys only (no indexes or wildcards)"),
});

export const TransformOpSchema = z.discriminatedUnion("op", [RenameSchema, RemoveSchema, SetSchema, WrapSchema]);

/**
 * JSON body mapping. Applied, in order, to `application/json` (and `+json`) bodies within
 * `max_body`; any other body — another type, encoded, invalid JSON, larger — passes untouched
 * (the access log line says why: `transform_skipped`), or is refused with the strict options.
 * A JSON body nested deeper than `max_depth` is refused in every mode: it would be valid JSON to
 * the upstream or client, passed as if the operations had applied. Response operations apply to
 * 2xx answers only. A `set` whose header or claim is absent removes the path instead, so a client
 * cannot supply that field itself in a mapped body (with `strict_request`, in any body).
 */
export const TransformFilterSchema = z
  .strictObject({
    type: z.literal("transform"),
    /** Operations on the request body sent upstream. */
    request: z.array(TransformOpSchema).default([]),
    /** Operations on the response body sent to the client (2xx answers). */
    response: z.array(TransformOpSchema).default([]),
    /** Larger bodies pass untouched (bodies of unknown length are read up to this, then streamed on). Default 1MiB. */
    max_body: SizeSchema.prefault("1MiB"),
    /**
     * Refuse a request body the request operations cannot map instead of passing it untouched:
     * another content type or a content coding (415), larger than max_body (413), invalid JSON
     * (400). Use it when a `set` must be authoritative (a tenant from a verified claim): otherwise
     * a client could send the field in a body the mapping skips. Default false.
     */
    strict_request: z.boolean().default(false),
    /**
     * Refuse (502) a 2xx answer with a body the response operations cannot map instead of passing
     * it untouched: another content type or a content coding, a partial (Content-Range) or
     * invalid JSON body (upstream_bad_response), one larger than max_body
     * (upstream_response_too_large). Use it when a `remove` must hold (a secret field). Empty
     * bodies pass. Default false.
     */
    strict_response: z.boolean().default(false),
    /**
     * Deepest nesting of arrays and objects mapped (`{"a":[1]}` is 2). A JSON body nested deeper
     * is refused whatever the strict options say: a request with 400 json_too_deep, an answer with
     * 502 upstream_response_too_deep. Default 128 (serde_json's limit; .NET's System.Text.Json
     * stops at 64, Ruby's json at 100, Jackson at 1000); at most 1000.
     */
    max_depth: z.number().int().min(1).max(1000).default(128),
  })
  .refine((t) => t.request.length + t.response.length > 0, { message: "give request or response operations", path: ["request"] });

export type TransformFilterConfig = z.infer<typeof TransformFilterSchema>;
export type TransformOp = z.infer<typeof TransformOpSchema>;
