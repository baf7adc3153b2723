/**
 * 64-bit integers sent as JSON numbers, kept exact. The protobuf JSON mapping accepts
 * `"id": 9007199254740993` for an int64 field, which JSON.parse would round to a double
 * (…992). Integer literals a double cannot hold are parsed into markers, then put back as their
 * digits (a string, which the mapping also accepts) where the message has a 64-bit integer, and
 * as the double JSON.parse would have made everywhere else (so a string field still refuses a
 * number). Pure.
 */
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";

class BigLiteral {
  constructor(readonly digits: string) {}
}

/** 16 digits in a row: the only texts that may hold an integer beyond 2^53 (checked before paying for a reviver). */
const LONG_DIGITS = /\d{16}/;
const INTEGER = /^-?\d+$/;

function reviver(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined && INTEGER.test(context.source)) return new BigLiteral(context.source);
  return value;
}

/** JSON.parse that leaves markers for integers beyond 2^53; throws as JSON.parse does. */
export function parseKeepingBigIntegers(text: string): unknown {
  return LONG_DIGITS.test(text) ? JSON.parse(text, reviver as (key: string, value: unknown) => unknown) : JSON.parse(text);
}

const INT64 = new Set<ScalarType>([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);
/** Wrapper types whose JSON form is a bare 64-bit integer. */
const INT64_WRAPPERS = new Set(["google.protobuf.Int64Value", "google.protobuf.UInt64Value"]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof BigLiteral);

/** Markers in `value` replaced: by their digits when `exact`, else by the double. Own keys kept as they are (`__proto__` included). */
function settle(value: unknown, exact = false): unknown {
  if (value instanceof BigLiteral) return exact ? value.digits : Number(value.digits);
  if (Array.isArray(value)) return value.map((v) => settle(v));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, settle(v)]));
  return value;
}

function inMessage(message: DescMessage, value: unknown): unknown {
  if (INT64_WRAPPERS.has(message.typeName)) return settle(value, true);
  if (!isObject(value)) return settle(value);
  return Object.fromEntries(Object.entries(value).map(([key, v]) => {
    const field = message.fields.find((f) => f.jsonName === key || f.name === key);
    return [key, field === undefined ? settle(v) : inField(field, v)];
  }));
}

/** `value` (the JSON of `field`) with its markers replaced. */
export function inField(field: DescField, value: unknown): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return settle(value, INT64.has(field.scalar));
    case "message":
      return inMessage(field.message, value);
    case "list":
      if (!Array.isArray(value)) return settle(value);
      if (field.listKind === "message") return value.map((v) => inMessage(field.message, v));
      return value.map((v) => settle(v, field.listKind === "scalar" && INT64.has(field.scalar)));
    case "map":
      if (!isObject(value)) return settle(value);
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, field.mapKind === "message" ? inMessage(field.message, v) : settle(v, field.mapKind === "scalar" && INT64.has(field.scalar))]));
    default:
      return settle(value);
  }
}

/** The request body (the JSON of `message`) with its markers replaced. */
export function exactIntegers(message: DescMessage, value: unknown): unknown {
  return inMessage(message, value);
}
