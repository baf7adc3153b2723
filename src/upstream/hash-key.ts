/** The request attribute a consistent-hash balancer hashes (compiled once per cluster). */
import type { HashOn } from "./balancers/schema.ts";
import { cookieValue } from "../util/cookies.ts";

export interface HashFacts {
  readonly headers: Headers;
  readonly clientIp: string;
  readonly path: string;
  /** Raw query string without `?`. */
  readonly query: string;
}

export type HashKey = (facts: HashFacts) => number | undefined;

const hash = (text: string) => Bun.hash.xxHash32(text);

export function compileHashKey(on: HashOn): HashKey {
  if (on.header !== undefined) {
    const name = on.header;
    return (f) => {
      const v = f.headers.get(name);
      return v === null ? undefined : hash(v);
    };
  }
  if (on.cookie !== undefined) {
    const name = on.cookie;
    return (f) => {
      const v = cookieValue(f.headers.get("cookie"), name);
      return v === undefined ? undefined : hash(v);
    };
  }
  if (on.query !== undefined) {
    const name = on.query;
    return (f) => {
      const v = f.query === "" ? null : new URLSearchParams(f.query).get(name);
      return v === null ? undefined : hash(v);
    };
  }
  if (on.client_ip) return (f) => (f.clientIp === "" ? undefined : hash(f.clientIp));
  return (f) => hash(f.path);
}
