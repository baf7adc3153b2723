/**
 * Dotted JSON paths, JSONPath-like: `user.address.city`, `items[0].id`, `$.a.b`, `items[*].secret`
 * (`*` or `[*]`: every element or member), `["odd.key"]`. Parsed once at build time; applied per
 * body with plain loops. Keys that would reach an object's prototype are refused at parse time,
 * and only own properties are ever read, so a body cannot steer a path into inherited members.
 */

export type Segment = { key: string } | { index: number } | { any: true };

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

/** The segments of `text`, or a message saying what is wrong with it. */
export function parsePath(text: string): Segment[] | string {
  let i = text.startsWith("$") ? 1 : 0;
  const segments: Segment[] = [];
  let expectName = i === 0; // a bare name may start the path, or follow a dot
  while (i < text.length) {
    const c = text[i]!;
    if (c === ".") {
      if (expectName && segments.length > 0) return `empty segment at ${i}`;
      expectName = true;
      i++;
      continue;
    }
    if (c === "[") {
      const close = text.indexOf("]", i);
      if (close === -1) return `unclosed [ at ${i}`;
      const inner = text.slice(i + 1, close);
      if (inner === "*") segments.push({ any: true });
      else if (/^\d{1,9}$/.test(inner)) segments.push({ index: Number(inner) });
      else if (/^(["']).*\1$/.test(inner) && inner.length >= 3) segments.push({ key: inner.slice(1, -1) });
      else return `[${inner}] is not an index, [*] or a quoted key`;
      i = close + 1;
      expectName = false;
      continue;
    }
    if (!expectName) return `expected . or [ at ${i}`;
    let end = i;
    while (end < text.length && text[end] !== "." && text[end] !== "[") end++;
    const name = text.slice(i, end);
    if (name.includes("]")) return `stray ] in "${name}"`;
    segments.push(name === "*" ? { any: true } : { key: name });
    i = end;
    expectName = false;
  }
  if (expectName && segments.length > 0) return "ends with a dot";
  if (segments.length === 0) return "is empty";
  for (const s of segments) if ("key" in s && FORBIDDEN.has(s.key)) return `"${s.key}" cannot be used as a key`;
  return segments;
}

type Container = Record<string, unknown> | unknown[];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The value at one segment of `node` (own properties only); undefined when absent. */
function child(node: unknown, seg: Segment): unknown {
  if ("index" in seg) return Array.isArray(node) ? node[seg.index] : undefined;
  if ("key" in seg) return isObject(node) && Object.hasOwn(node, seg.key) ? node[seg.key] : undefined;
  return undefined;
}

/**
 * A compiled path: the part up to its last wildcard (which may match many containers) and the
 * wildcard-free rest, applied within each of them.
 */
export interface CompiledPath {
  readonly text: string;
  readonly prefix: readonly Segment[];
  readonly tail: readonly Segment[];
}

export function compilePath(text: string): CompiledPath {
  const parsed = parsePath(text);
  if (typeof parsed === "string") throw new Error(`invalid path "${text}": ${parsed}`);
  let last = -1;
  parsed.forEach((s, i) => {
    if ("any" in s) last = i;
  });
  return { text, prefix: parsed.slice(0, last + 1), tail: parsed.slice(last + 1) };
}

/** Every container the path's prefix reaches in `root` (just `root` when it has no wildcard). */
export function containers(root: unknown, path: CompiledPath): unknown[] {
  let nodes = [root];
  for (const seg of path.prefix) {
    const next: unknown[] = [];
    for (const node of nodes) {
      if ("any" in seg) {
        if (Array.isArray(node)) next.push(...node);
        else if (isObject(node)) next.push(...Object.values(node));
      } else {
        const c = child(node, seg);
        if (c !== undefined) next.push(c);
      }
    }
    nodes = next;
  }
  return nodes;
}

/** The value at `tail` under `node`; undefined when absent. */
export function getAt(node: unknown, tail: readonly Segment[]): unknown {
  let cur = node;
  for (const seg of tail) {
    cur = child(cur, seg);
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** Removes the value at `tail` under `node` (an array element is spliced out); true if there was one. */
export function removeAt(node: unknown, tail: readonly Segment[]): boolean {
  const parent = getAt(node, tail.slice(0, -1));
  const last = tail[tail.length - 1]!;
  if ("index" in last) {
    if (!Array.isArray(parent) || last.index >= parent.length) return false;
    parent.splice(last.index, 1);
    return true;
  }
  if ("key" in last && isObject(parent) && Object.hasOwn(parent, last.key)) {
    delete parent[last.key];
    return true;
  }
  return false;
}

/**
 * Sets `value` at `tail` under `node`, creating missing objects on the way. Never replaces a
 * scalar on the way, and writes an array index only within the array or just past its end.
 */
export function setAt(node: unknown, tail: readonly Segment[], value: unknown): boolean {
  let cur = node;
  for (let i = 0; i < tail.length; i++) {
    const seg = tail[i]!;
    const lastSeg = i === tail.length - 1;
    if ("index" in seg) {
      if (!Array.isArray(cur) || seg.index > cur.length) return false;
    } else if ("key" in seg) {
      if (!isObject(cur)) return false;
    } else return false;
    const container = cur as Container;
    const key = "index" in seg ? seg.index : seg.key;
    if (lastSeg) {
      (container as Record<string | number, unknown>)[key] = value;
      return true;
    }
    let next = child(container, seg);
    if (next === undefined) {
      next = {};
      (container as Record<string | number, unknown>)[key] = next;
    }
    cur = next;
  }
  return false;
}
