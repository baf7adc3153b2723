/**
 * JSON bodies as the gateway rewrites them: recognised by media type, parsed without losing
 * numbers, serialised back. Numbers a double cannot hold exactly (64-bit ids, long decimals,
 * huge exponents) are kept as their source text, so a body passes through a rewrite unchanged
 * except where the rewrite says.
 */

/** `application/json` and any `+json` type (RFC 6839), parameters ignored. */
export function isJsonType(contentType: string | null): boolean {
  if (contentType === null) return false;
  const semi = contentType.indexOf(";");
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/** The engine's JSON.rawJSON / isRawJSON (TC39 "JSON.parse source text access", shipped in JavaScriptCore). */
const Raw = JSON as unknown as {
  rawJSON(text: string): object;
  isRawJSON(value: unknown): value is { rawJSON: string };
};

/** 16 or more significant digits, or a three-digit exponent: the only numbers that may not survive a double. */
const LOSSY_NUMBER = /\d(?:\.?\d){15}|[eE][+-]?\d{3}/;

function keepSource(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === "number" && context?.source !== undefined && String(value) !== context.source) return Raw.rawJSON(context.source);
  return value;
}

export const INVALID_JSON = Symbol("invalid JSON");
/** Arrays and objects nest deeper than the limit given: not parsed (it may or may not be valid JSON). */
export const TOO_DEEP = Symbol("JSON nested too deep");

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The default nesting limit (arrays and objects; `{"a":[1]}` is 2). Deeper bodies are not parsed:
 * JSC's JSON.parse overflows its stack at ~100,000 levels and serialising that many fails only
 * after ~1 s of CPU (measured); 10,000 levels parse and serialise in ~3 ms.
 */
export const MAX_DEPTH = 256;

/** Whether arrays and objects nest deeper than `max` (a linear scan that skips strings). */
function nestsDeeper(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c) i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return true;
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return false;
}

/**
 * Parses a UTF-8 JSON text: INVALID_JSON when it is not one (or not valid UTF-8), TOO_DEEP when
 * arrays and objects nest deeper than `maxDepth` (checked first, by a scan: then it is not parsed).
 */
export function parseJson(input: Uint8Array | ArrayBuffer, maxDepth = MAX_DEPTH): unknown {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  if (nestsDeeper(bytes, maxDepth)) return TOO_DEEP;
  let text: string;
  try {
    text = decoder.decode(bytes);
    // The reviver costs ~12× a plain parse (measured, 700 KB): only when a number needs it.
    return LOSSY_NUMBER.test(text) ? JSON.parse(text, keepSource as (key: string, value: unknown) => unknown) : JSON.parse(text);
  } catch {
    return INVALID_JSON;
  }
}

/** A number kept as its source text by parseJson (the text is `.rawJSON`). */
export function isRawNumber(value: unknown): value is { rawJSON: string } {
  return Raw.isRawJSON(value);
}

export function toJsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
