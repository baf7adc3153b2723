/**
 * The client's side of a transcoded call: JSON body, path variables and query parameters merged
 * into the RPC's request message (protobuf JSON rules, unknown fields refused), then encoded.
 */
import { type DescField, type FileRegistry, fromJson, type JsonValue, ScalarType, toBinary } from "@bufbuild/protobuf";
import { SwitchyardError } from "../../util/errors.ts";
import type { Binding } from "./bindings.ts";
import { resolveFieldPath } from "./descriptors.ts";
import { exactIntegers, inField, parseKeepingBigIntegers } from "./exact-integers.ts";

type JsonObject = { [key: string]: JsonValue };

const invalidField = (message: string) => new SwitchyardError({ code: "invalid_field", status: 400, source: "client", message });

export interface RequestParts {
  readonly pathValues: Readonly<Record<string, string>>;
  /** Raw query string without "?". */
  readonly query: string;
  /** The body bytes; empty when there was none. */
  readonly body: Uint8Array;
}

export interface RequestOptions {
  readonly registry: FileRegistry;
  readonly ignoreUnknownQuery: boolean;
}

/** The encoded request message, or the client's error (400). */
export function encodeRequest(binding: Binding, parts: RequestParts, options: RequestOptions): Uint8Array | SwitchyardError {
  let root: JsonObject = {};
  if (parts.body.byteLength > 0) {
    if (binding.body === undefined) return invalidField(`${binding.verb} ${binding.template.source} takes no request body`);
    let parsed: JsonValue;
    try {
      // 64-bit integers given as numbers keep their digits (JSON.parse alone rounds them).
      const raw = parseKeepingBigIntegers(new TextDecoder("utf-8", { fatal: true }).decode(parts.body));
      parsed = (binding.body === "*" ? exactIntegers(binding.rpc.input, raw) : inField(binding.body, raw)) as JsonValue;
    } catch (e) {
      return new SwitchyardError({ code: "invalid_json", status: 400, source: "client", message: `the request body is not valid JSON: ${(e as Error).message}` });
    }
    if (binding.body === "*") {
      if (!isObject(parsed)) return invalidField(`the request body must be a JSON object (${binding.rpc.input.typeName})`);
      root = parsed;
    } else root[binding.body.name] = parsed;
  }
  // Path variables win over the same field in the body (grpc-gateway does the same).
  for (const { chain, variable } of binding.pathFields) setAt(root, chain, scalarFromText(chain.at(-1)!, parts.pathValues[variable]!));

  if (parts.query !== "") {
    const problem = applyQuery(root, binding, new URLSearchParams(parts.query), options.ignoreUnknownQuery);
    if (problem !== undefined) return problem;
  }
  try {
    return toBinary(binding.rpc.input, fromJson(binding.rpc.input, root, { registry: options.registry }));
  } catch (e) {
    // protobuf-es names the field and what was wrong: `key "x" is unknown`, `expected number (int32), got "a"`.
    return invalidField((e as Error).message);
  }
}

/** Query parameters set fields that neither the path nor the body set (google.api.http rules). */
function applyQuery(root: JsonObject, binding: Binding, params: URLSearchParams, ignoreUnknown: boolean): SwitchyardError | undefined {
  for (const name of new Set(params.keys())) {
    // With body "*" every field comes from the body: a query parameter names nothing.
    const chain = binding.body === "*" ? `the body carries every field of ${binding.rpc.input.typeName}` : resolveFieldPath(binding.rpc.input, name);
    if (typeof chain === "string") {
      if (ignoreUnknown) continue;
      return invalidField(`query parameter ${name}: ${chain}`);
    }
    if (binding.body !== undefined && chain[0] === binding.body) return invalidField(`query parameter ${name}: that field comes from the request body`);
    if (binding.pathFields.some((p) => p.chain.every((f, i) => chain[i] === f) || chain.every((f, i) => p.chain[i] === f))) {
      return invalidField(`query parameter ${name}: that field comes from the path`);
    }
    if (chain.slice(0, -1).some((f) => f.fieldKind !== "message")) return invalidField(`query parameter ${name}: only singular message fields can be stepped into`);
    const leaf = chain.at(-1)!;
    const values = params.getAll(name);
    if (leaf.fieldKind === "list") setAt(root, chain, values.map((v) => scalarFromText(leaf, v)));
    else if (leaf.fieldKind === "map") return invalidField(`query parameter ${name}: map fields cannot be set from the query`);
    else if (values.length > 1) return invalidField(`query parameter ${name} is given ${values.length} times but ${leaf.name} is not repeated`);
    else setAt(root, chain, scalarFromText(leaf, values[0]!));
  }
  return undefined;
}

/**
 * Text (path or query) as the JSON value protobuf JSON expects: bools and numeric enum values
 * need converting; numbers stay strings (protobuf JSON accepts "5" for any integer, and 64-bit
 * values keep their precision); messages such as Timestamp take their string form as is.
 */
function scalarFromText(field: DescField, text: string): JsonValue {
  const scalar = field.fieldKind === "scalar" ? field.scalar : field.fieldKind === "list" ? field.scalar : undefined;
  if (scalar === ScalarType.BOOL && (text === "true" || text === "false")) return text === "true";
  const isEnum = field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum");
  if (isEnum && /^-?\d+$/.test(text)) return Number(text);
  return text;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Sets the field at `chain` in a protobuf-JSON object, whichever name (proto or JSON) the body used for it. */
function setAt(root: JsonObject, chain: readonly DescField[], value: JsonValue): void {
  let object = root;
  chain.forEach((field, i) => {
    const existingKey = Object.hasOwn(object, field.jsonName) ? field.jsonName : field.name;
    if (i === chain.length - 1) {
      delete object[field.jsonName];
      object[field.name] = value;
      return;
    }
    const inner = object[existingKey];
    if (isObject(inner)) object = inner;
    else {
      delete object[field.jsonName];
      const created: JsonObject = {};
      object[field.name] = created;
      object = created;
    }
  });
}
