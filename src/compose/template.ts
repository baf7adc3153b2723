/**
 * `${…}` expressions of composition routes, compiled once at build time. An expression names
 * where its value comes from:
 *
 *   calls.<call>[.path]   a call's parsed JSON answer (null when an optional call failed)
 *   query.<name>          a query parameter of the client's request
 *   header.<name>         a header of the client's request
 *   claims.<path>         a verified claim (set by an auth filter on the route)
 *   params.<name>         a named group of the route's `match.path.regex`, percent-decoded
 *
 * A string that is exactly one expression takes the value as it is (object, number…); text
 * around expressions makes a string.
 */
import { getAt, parsePath, type Segment } from "../filters/transform/json-path.ts";
import { isRawNumber } from "../util/json.ts";

export const SOURCES = ["calls", "query", "header", "claims", "params"] as const;
export type Source = (typeof SOURCES)[number];

export interface Expression {
  readonly text: string;
  readonly source: Source;
  /** The call, parameter or header name (for calls: the call; the path goes on in `path`). */
  readonly name: string;
  readonly path: readonly Segment[];
}

/** What expressions read from, per request. */
export interface Scope {
  /** Parsed answers of the calls settled so far; null for a failed optional call. */
  readonly calls: ReadonlyMap<string, unknown>;
  query(): URLSearchParams;
  readonly headers: Headers;
  readonly claims: Readonly<Record<string, unknown>> | undefined;
  readonly params: Readonly<Record<string, string>> | undefined;
}

const EXPRESSION = /\$\{([^}]*)\}/g;

/** Parses the inside of one `${…}`; a message when it is not a valid expression. */
export function parseExpression(text: string): Expression | string {
  const dot = text.indexOf(".");
  const source = (dot === -1 ? text : text.slice(0, dot)) as Source;
  if (!SOURCES.includes(source)) return `\${${text}}: starts with ${SOURCES.join(", ")}`;
  if (dot === -1) return `\${${text}}: name what to read (e.g. ${source}.id)`;
  const rest = text.slice(dot + 1);
  if (source === "query" || source === "header") {
    if (rest === "") return `\${${text}}: a ${source} name is missing`;
    return { text, source, name: source === "header" ? rest.toLowerCase() : rest, path: [] };
  }
  const path = parsePath(rest);
  if (typeof path === "string") return `\${${text}}: ${path}`;
  if (path.some((s) => "any" in s)) return `\${${text}}: wildcards are not allowed here`;
  if (source === "claims") return { text, source, name: "", path };
  const first = path[0]!;
  if (!("key" in first)) return `\${${text}}: name the ${source === "calls" ? "call" : "parameter"} first`;
  return { text, source, name: first.key, path: path.slice(1) };
}

/** Every expression in a string, or the first problem. */
export function expressionsIn(text: string): Expression[] | string {
  const found: Expression[] = [];
  for (const m of text.matchAll(EXPRESSION)) {
    const e = parseExpression(m[1]!);
    if (typeof e === "string") return e;
    found.push(e);
  }
  if (text.replace(EXPRESSION, "").includes("${")) return `unclosed \${ in "${text}"`;
  return found;
}

/** Every expression in a JSON template (strings at any depth), or the first problem. */
export function expressionsInJson(template: unknown): Expression[] | string {
  if (typeof template === "string") return expressionsIn(template);
  const parts = Array.isArray(template) ? template : template !== null && typeof template === "object" ? Object.values(template) : [];
  const found: Expression[] = [];
  for (const part of parts) {
    const inner = expressionsInJson(part);
    if (typeof inner === "string") return inner;
    found.push(...inner);
  }
  return found;
}

/** The value of an expression; undefined when absent. */
export function evaluate(e: Expression, scope: Scope): unknown {
  switch (e.source) {
    case "calls": {
      const answer = scope.calls.get(e.name);
      return answer === undefined ? undefined : getAt(answer, e.path);
    }
    case "query":
      return scope.query().get(e.name) ?? undefined;
    case "header":
      return scope.headers.get(e.name) ?? undefined;
    case "claims":
      return scope.claims === undefined ? undefined : getAt(scope.claims, e.path);
    case "params": {
      const params = scope.params;
      return params !== undefined && Object.hasOwn(params, e.name) ? params[e.name] : undefined;
    }
  }
}

/** A scalar as text (a number kept exactly as the upstream wrote it); undefined for objects, arrays and null. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (isRawNumber(value)) return value.rawJSON;
  return undefined;
}

type Piece = string | Expression;

function pieces(text: string): Piece[] {
  const out: Piece[] = [];
  let last = 0;
  for (const m of text.matchAll(EXPRESSION)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    out.push(parseExpression(m[1]!) as Expression);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** A filled string template: the text, or the expression whose value was absent (not a scalar) or refused. */
export type Filled = string | { missing: Expression } | { refused: Expression };

/**
 * A string template for a path or a header: each value goes through `encode` (URL-encoding, or
 * none); a value `accept` refuses (a control character in a header) stops it.
 */
export function compileText(text: string, encode: (value: string) => string, accept: (value: string) => boolean = () => true): (scope: Scope) => Filled {
  const parts = pieces(text);
  return (scope) => {
    let out = "";
    for (const p of parts) {
      if (typeof p === "string") {
        out += p;
        continue;
      }
      const value = scalarText(evaluate(p, scope));
      if (value === undefined) return { missing: p };
      if (!accept(value)) return { refused: p };
      out += encode(value);
    }
    return out;
  };
}

/**
 * A JSON template (the response, a call's body): strings that are one expression take its value
 * (absent → null); other strings with expressions are interpolated (absent → "").
 */
export function compileJson(template: unknown): (scope: Scope) => unknown {
  if (typeof template === "string") {
    const parts = pieces(template);
    if (parts.length === 0) return () => "";
    if (parts.length === 1 && typeof parts[0] === "string") return () => template;
    if (parts.length === 1) {
      const e = parts[0] as Expression;
      return (scope) => evaluate(e, scope) ?? null;
    }
    return (scope) => parts.map((p) => (typeof p === "string" ? p : interpolated(evaluate(p, scope)))).join("");
  }
  if (Array.isArray(template)) {
    const items = template.map(compileJson);
    return (scope) => items.map((item) => item(scope));
  }
  if (template !== null && typeof template === "object") {
    const entries = Object.entries(template).map(([k, v]) => [k, compileJson(v)] as const);
    // fromEntries defines own properties: a key such as __proto__ stays a plain key.
    return (scope) => Object.fromEntries(entries.map(([k, v]) => [k, v(scope)]));
  }
  return () => template;
}

function interpolated(value: unknown): string {
  if (value === undefined || value === null) return "";
  return scalarText(value) ?? JSON.stringify(value);
}
