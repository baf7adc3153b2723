/**
 * HTTP path templates in the syntax of google.api.http (google/api/http.proto):
 *
 *   Template = "/" Segments [ Verb ] ;   Segments = Segment { "/" Segment } ;
 *   Segment  = "*" | "**" | LITERAL | Variable ;   Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *   Verb     = ":" LITERAL ;
 *
 * compiled once into a regex over the raw (still percent-encoded) request path. Pure.
 */

export interface PathTemplate {
  readonly source: string;
  /** Field paths of the variables, in order (`user.id`). */
  readonly variables: readonly string[];
  /** The variables' values, percent-decoded, or undefined when the path does not match; throws URIError on a bad escape. */
  match(path: string): Record<string, string> | undefined;
}

const LITERAL = /^[A-Za-z0-9._~!$&'()+,;=@%-]+$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** One segment list (no variables inside) → regex source; "**" only as the last segment. */
function segmentsRegex(segments: string[], allowVariables: boolean, variables: string[], multi: Set<string>, source: string): string {
  return segments
    .map((segment, i) => {
      if (segment === "*") return "[^/]+";
      if (segment === "**") {
        if (i !== segments.length - 1) throw new Error(`"**" must be the last segment in ${source}`);
        return "[^/]+(?:/[^/]+)*";
      }
      if (segment.startsWith("{")) {
        if (!allowVariables) throw new Error(`nested variable in ${source}`);
        if (!segment.endsWith("}")) throw new Error(`unclosed variable in ${source}`);
        const inner = segment.slice(1, -1);
        const eq = inner.indexOf("=");
        const field = eq === -1 ? inner : inner.slice(0, eq);
        if (!FIELD_PATH.test(field)) throw new Error(`"${field}" is not a field path (e.g. name or user.id) in ${source}`);
        if (variables.includes(field)) throw new Error(`field ${field} is bound twice in ${source}`);
        variables.push(field);
        const pattern = eq === -1 ? ["*"] : inner.slice(eq + 1).split("/");
        if (pattern.length > 1 || pattern[0] === "**") multi.add(field);
        return `(${segmentsRegex(pattern, false, variables, multi, source)})`;
      }
      if (!LITERAL.test(segment)) throw new Error(`"${segment}" is not a valid path segment in ${source}`);
      return escapeRegex(segment);
    })
    .join("/");
}

/** Splits on "/" outside braces: `/v1/{name=shelves/*}/books` → ["v1", "{name=shelves/*}", "books"]. */
function splitSegments(path: string, source: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of path) {
    if (ch === "{") depth++;
    if (ch === "}") depth--;
    if (depth < 0 || depth > 1) throw new Error(`unbalanced braces in ${source}`);
    if (ch === "/" && depth === 0) {
      out.push(current);
      current = "";
    } else current += ch;
  }
  if (depth !== 0) throw new Error(`unbalanced braces in ${source}`);
  out.push(current);
  if (out.some((s) => s === "")) throw new Error(`empty path segment in ${source}`);
  return out;
}

/** Compiles a template; throws an Error whose message says what is wrong with it. */
export function compileTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new Error(`a path template starts with "/": ${source}`);
  let body = source.slice(1);
  let verb = "";
  // The verb follows the last segment, outside any variable.
  const lastColon = body.lastIndexOf(":");
  if (lastColon !== -1 && lastColon > body.lastIndexOf("}") && lastColon > body.lastIndexOf("/")) {
    verb = body.slice(lastColon + 1);
    body = body.slice(0, lastColon);
    if (!LITERAL.test(verb)) throw new Error(`"${verb}" is not a valid verb in ${source}`);
  }
  const variables: string[] = [];
  const multi = new Set<string>();
  const regex = new RegExp(`^/${segmentsRegex(splitSegments(body, source), true, variables, multi, source)}${verb ? `:${escapeRegex(verb)}` : ""}$`);
  return {
    source,
    variables,
    match(path) {
      const m = regex.exec(path);
      if (m === null) return undefined;
      const values: Record<string, string> = {};
      variables.forEach((field, i) => {
        const raw = m[i + 1]!;
        // A multi-segment value keeps its %2F escaped: decoding it would merge two segments into one.
        values[field] = decodeURIComponent(multi.has(field) ? raw.replace(/%2F/gi, "%252F") : raw);
      });
      return values;
    },
  };
}
