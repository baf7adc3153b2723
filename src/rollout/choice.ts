/**
 * Which side of a rollout one request goes to: the canary with the rollout's current weight, and
 * with stickiness the same side for a client as long as the rollout lasts — by a cookie the proxy
 * sets (the side is kept, whatever the weight does later), or by a hash of a header or a token
 * claim (the client is on the canary while its hash falls under the weight: it joins the canary
 * once, when the weight passes it, and never goes back). Promoted or rolled back, everyone goes
 * to one side.
 */
import type { Cluster } from "../upstream/cluster.ts";
import type { RolloutHandle } from "./registry.ts";

/** Where a choice leaves what it needs said on the response, and the caller's verified identity (claims). */
export interface StickySink {
  stickyCookie?: string;
  readonly auth?: { readonly subject?: string; readonly claims?: Readonly<Record<string, unknown>> };
}

/** FNV-1a (32 bits) of the run id and the client's key, in 0–9,999. */
function bucket(id: string, key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0x2e, 0x01000193);
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % 10_000;
}

/** The value of cookie `name` in a Cookie header, without splitting it into an array. */
function cookie(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  let at = header.indexOf(name);
  while (at !== -1) {
    const before = at === 0 ? " " : header[at - 1]!;
    if ((before === " " || before === ";") && header[at + name.length] === "=") {
      const end = header.indexOf(";", at);
      return header.slice(at + name.length + 1, end === -1 ? undefined : end).trim();
    }
    at = header.indexOf(name, at + 1);
  }
  return undefined;
}

export type RolloutChoice = (headers: Headers, random: () => number, sink: StickySink | undefined) => Cluster;

export function rolloutChoice(handle: RolloutHandle, stable: Cluster, canary: Cluster): RolloutChoice {
  const sticky = handle.def.sticky;
  const cookieName = sticky === false || sticky.header !== undefined || sticky.claim !== undefined ? undefined : sticky.cookie ?? `sy-rollout-${handle.route}`;
  const maxAge = sticky === false ? 0 : Math.round(sticky.cookie_max_age / 1000);
  const weighted = (random: () => number) => (random() * 10_000 < handle.weight ? canary : stable);
  return function chooseSide(headers, random, sink) {
    const { phase, id } = handle.state;
    if (phase === "promoted") return canary;
    if (phase === "rolled_back") return stable;
    if (sticky === false) return weighted(random);
    if (cookieName !== undefined) {
      const value = cookie(headers.get("cookie"), cookieName);
      if (value !== undefined && value.length === id.length + 2 && value.startsWith(id) && value[id.length] === ".") {
        const side = value[id.length + 1];
        if (side === "c") return canary;
        if (side === "s") return stable;
      }
      const chosen = weighted(random);
      if (sink !== undefined) {
        const cookies = (handle.cookies ??= [`${cookieName}=${id}.s; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax`, `${cookieName}=${id}.c; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax`]);
        sink.stickyCookie = cookies[chosen === canary ? 1 : 0];
      }
      return chosen;
    }
    let key: string | undefined;
    if (sticky.header !== undefined) key = headers.get(sticky.header) ?? undefined;
    else {
      const auth = sink?.auth;
      const claim = sticky.claim === "sub" ? auth?.subject ?? auth?.claims?.sub : auth?.claims?.[sticky.claim!];
      if (typeof claim === "string" || typeof claim === "number") key = String(claim);
    }
    // Without a key the request is not sticky: weighted like any other.
    if (key === undefined || key === "") return weighted(random);
    return bucket(id, key) < handle.weight ? canary : stable;
  };
}
