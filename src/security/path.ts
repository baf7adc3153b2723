/**
 * Request path normalization before routing, pure. After Envoy's edge guidance (normalize_path,
 * merge_slashes, path_with_escaped_slashes_action): the path routes are matched on, filters see
 * and the upstream receives is one and the same, so an encoded variant cannot reach a route by
 * another name.
 *
 * What Bun 1.4.5 has done before we see `req.url` (measured): dot segments resolved (`%2e` too),
 * `\` turned into `/` (WHATWG URL rules), non-ASCII percent-encoded. Left alone: `//`, `%2F`,
 * `%5C`, `%25` (double encoding), percent-encoded unreserved characters (`%61dmin`).
 */
import type { PathNormalization } from "./schema.ts";

/** Only paths with one of these need any work: the common clean path costs one regex test. */
const NEEDS_WORK = /%|\\|\/\/|\/\./;

export function needsNormalization(path: string): boolean {
  return NEEDS_WORK.test(path);
}

/** A path that cannot be normalized safely: the reason, for the 400 message. */
export class PathProblem {
  constructor(readonly reason: string) {}
}

const HEX = /^[0-9A-Fa-f]{2}$/;

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" — decoding them changes nothing (§6.2.2.2). */
function isUnreserved(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39)
    || byte === 0x2d || byte === 0x2e || byte === 0x5f || byte === 0x7e;
}

/**
 * Normalizes an origin-form path (no query): percent-encodings checked, unreserved ones decoded,
 * the rest upper-cased (§6.2.2.1); escaped slashes and double encoding handled as configured;
 * slashes merged (when on); dot segments removed (§5.2.4).
 */
export function normalizePath(path: string, options: PathNormalization): string | PathProblem {
  let decoded = "";
  let from = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x5c) {
      // Bun already turns `\` into `/`; should one ever arrive, it is read the same way.
      decoded += path.slice(from, i) + "/";
      from = i + 1;
      continue;
    }
    if (c !== 0x25) continue;
    const hex = path.slice(i + 1, i + 3);
    if (!HEX.test(hex)) return new PathProblem("the path has a malformed percent-encoding");
    const byte = parseInt(hex, 16);
    let replacement: string;
    if (byte === 0) return new PathProblem("the path has an encoded NUL (%00)");
    if (byte === 0x2f || byte === 0x5c) {
      if (options.escaped_slashes === "reject") return new PathProblem("the path has an escaped slash or backslash (%2F, %5C)");
      replacement = options.escaped_slashes === "unescape" ? "/" : `%${hex.toUpperCase()}`;
    } else if (byte === 0x25 && HEX.test(path.slice(i + 3, i + 5))) {
      if (options.double_encoding === "reject") return new PathProblem("the path is percent-encoded twice (%25 followed by hex digits)");
      replacement = "%25";
    } else replacement = isUnreserved(byte) ? String.fromCharCode(byte) : `%${hex.toUpperCase()}`;
    decoded += path.slice(from, i) + replacement;
    from = i + 3;
    i += 2;
  }
  decoded += path.slice(from);
  return removeDotSegments(decoded, options.merge_slashes);
}

/** RFC 3986 §5.2.4 on a path that starts with `/`; empty segments dropped too when `merge`. */
function removeDotSegments(path: string, merge: boolean): string | PathProblem {
  const parts = path.split("/");
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 1; i < parts.length; i++) {
    const segment = parts[i]!;
    const last = i === parts.length - 1;
    if (segment === "." || segment === "..") {
      if (segment === "..") out.pop();
      if (last) trailingSlash = true;
      continue;
    }
    // Tomcat and other servlet containers read `/..;x/` as `/../`: a name no route should see.
    if (segment.startsWith("..;") || segment.startsWith(".;")) return new PathProblem("the path has a dot segment with parameters (..;)");
    if (segment === "") {
      if (last) {
        trailingSlash = true;
        continue;
      }
      if (merge) continue;
    }
    out.push(segment);
  }
  if (out.length === 0) return "/";
  return `/${out.join("/")}${trailingSlash ? "/" : ""}`;
}
