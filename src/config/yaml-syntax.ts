/**
 * Explains a YAML file that does not parse. Bun.YAML's errors carry no position ("Unexpected
 * token"), so the line is estimated; and the most common cause in a config is named: `${VAR}`
 * unquoted inside a flow collection (`{ dir: ${X} }`, `[${X}]`). Variables are substituted after
 * parsing, in string values, so YAML sees the `{` and `}` of the reference itself and reads them as
 * brackets; quoted (`"${X}"`) the reference is a string, as in block style (`dir: ${X}`).
 */

/** A plain scalar inside `{ … }` or `[ … ]` that holds a `${…}`. */
export interface UnquotedFlowVar {
  /** 1-based. */
  readonly line: number;
  /** The whole scalar, e.g. `http://${UP}:82`. */
  readonly scalar: string;
  /** The innermost collection around it. */
  readonly inside: "{ … }" | "[ … ]";
  /** Offsets of the scalar in the text. */
  readonly start: number;
  readonly end: number;
}

const blank = (ch: string | undefined) => ch === undefined || ch === " " || ch === "\t" || ch === "\r";

/** Where a plain scalar in a flow collection ends (`,` `]` `}` `: ` ` #` or the line's end); a `${…}` in it is one unit. */
function flowScalarEnd(line: string, from: number): number {
  let j = from;
  while (j < line.length) {
    const ch = line[j]!;
    if (ch === "$" && line[j + 1] === "{") {
      const close = line.indexOf("}", j + 2);
      j = close === -1 ? line.length : close + 1;
      continue;
    }
    if (ch === "," || ch === "]" || ch === "}") break;
    if (ch === ":" && (blank(line[j + 1]) || line[j + 1] === "," || line[j + 1] === "]" || line[j + 1] === "}")) break;
    if (ch === "#" && blank(line[j - 1])) break;
    j++;
  }
  while (j > from && blank(line[j - 1])) j--;
  return j;
}

/**
 * Every unquoted `${…}` inside a flow collection. A light scan, not a YAML parser: quotes,
 * comments, block scalars (`|`, `>`) and the nesting of `{`/`[` are followed; multi-line plain
 * scalars inside brackets are not (each line is read on its own).
 */
export function unquotedFlowVars(text: string): UnquotedFlowVar[] {
  const found: UnquotedFlowVar[] = [];
  const stack: ("{" | "[")[] = [];
  let quote: '"' | "'" | undefined;
  let blockIndent = -1; // inside a block scalar: lines indented more than this are its text
  let tokenStart = true; // the next non-blank character starts a token (a scalar, a quote, a bracket)
  let offset = 0;
  const lines = text.split("\n");
  for (const [n, line] of lines.entries()) {
    const lineStart = offset;
    offset += line.length + 1;
    const indent = line.length - line.trimStart().length;
    if (blockIndent >= 0) {
      if (line.trim() === "" || indent > blockIndent) continue;
      blockIndent = -1;
    }
    if (stack.length === 0 && quote === undefined) tokenStart = true; // inside brackets, a line goes on from the last
    for (let j = 0; j < line.length; j++) {
      const ch = line[j]!;
      if (quote === '"') {
        if (ch === "\\") j++;
        else if (ch === '"') quote = undefined;
        continue;
      }
      if (quote === "'") {
        if (ch === "'" && line[j + 1] === "'") j++;
        else if (ch === "'") quote = undefined;
        continue;
      }
      if (blank(ch)) continue;
      if (ch === "#" && (j === 0 || blank(line[j - 1]))) break;
      const next = line[j + 1];
      const atToken: boolean = tokenStart;
      if (atToken && (ch === '"' || ch === "'")) {
        quote = ch;
        tokenStart = false;
        continue;
      }
      if (atToken && (ch === "{" || ch === "[")) {
        stack.push(ch);
        tokenStart = true;
        continue;
      }
      if (stack.length === 0) {
        if (atToken && (ch === "|" || ch === ">") && /^[-+0-9]*\s*(#.*)?$/.test(line.slice(j + 1))) {
          blockIndent = indent;
          break;
        }
        // `- `, `? ` and `: ` have a token after them; anything else is inside a plain scalar.
        tokenStart = blank(next) && (ch === ":" || (atToken && (ch === "-" || ch === "?")));
        continue;
      }
      if (ch === "}" || ch === "]") {
        stack.pop();
        tokenStart = false;
        continue;
      }
      if (ch === "," || (ch === ":" && (blank(next) || next === "," || next === "]" || next === "}"))) {
        tokenStart = true;
        continue;
      }
      const end = flowScalarEnd(line, j);
      const scalar = line.slice(j, end);
      if (scalar.includes("${")) found.push({ line: n + 1, scalar, inside: stack.at(-1) === "{" ? "{ … }" : "[ … ]", start: lineStart + j, end: lineStart + end });
      j = end - 1;
      tokenStart = false;
    }
  }
  return found;
}

/** The text with each of `vars` double-quoted (JSON escapes are YAML's too). */
export function quoteFlowVars(text: string, vars: readonly UnquotedFlowVar[]): string {
  let out = text;
  for (const v of [...vars].sort((a, b) => b.start - a.start)) out = out.slice(0, v.start) + JSON.stringify(v.scalar) + out.slice(v.end);
  return out;
}

/** The line after the longest prefix of the file that still parses (only ever run on a file that failed). */
function errorLine(text: string): number {
  const lines = text.split("\n");
  let good = 0;
  for (let n = 1; n <= lines.length; n++) {
    try {
      Bun.YAML.parse(lines.slice(0, n).join("\n"));
      good = n;
    } catch {
      // keep looking: a later prefix may close a multi-line construct
    }
  }
  return Math.min(good + 1, lines.length);
}

function parseError(text: string): string | undefined {
  try {
    Bun.YAML.parse(text);
    return undefined;
  } catch (e) {
    return `syntax error near line ${errorLine(text)}: ${(e as Error).message}`;
  }
}

/**
 * The problems of a YAML `file` whose `text` failed to parse with `error`: each unquoted `${…}` in
 * a flow collection at `file:line`, with the quoted form to write; then whatever error is left
 * once they are quoted (or the original error when there are none).
 */
export function yamlSyntaxProblems(file: string, text: string, error: Error): string[] {
  const vars = unquotedFlowVars(text);
  if (vars.length === 0) return [`syntax error near line ${errorLine(text)}: ${error.message}`];
  const problems = vars.map((v) => `${file}:${v.line}: ${v.scalar} inside ${v.inside} must be quoted: ${JSON.stringify(v.scalar)}`);
  const left = parseError(quoteFlowVars(text, vars));
  if (left !== undefined) problems.push(left);
  return problems;
}
