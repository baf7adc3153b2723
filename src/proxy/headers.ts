/**
 * Header handling on the way up and down (RFC 9110 §7.6.1: hop-by-hop fields are not forwarded).
 * Rule sets are compiled at build time; per request they are plain loops over small arrays.
 */
import { newTraceparent, parseTraceparent } from "../observe/trace-context.ts";
import type { HeaderRules } from "./route-schema.ts";
import { FORGEABLE, HOP_BY_HOP, HOP_BY_HOP_SET, NOT_NOMINABLE, REWRITE_CLAIMS } from "../security/header-fields.ts";

/** Looks for a hop-by-hop field without a closure per call (forEach with `this`). */
const hopFinder = {
  found: false,
  visit(this: { found: boolean }, _value: string, name: string): void {
    if (HOP_BY_HOP_SET.has(name)) this.found = true;
  },
};

/**
 * Removes hop-by-hop fields and every field that `Connection` names (except those above). One pass
 * over the few fields a message has finds whether there is anything to remove (usually not)
 * before a dozen deletes.
 */
export function stripHopByHop(headers: Headers): void {
  hopFinder.found = false;
  headers.forEach(hopFinder.visit, hopFinder);
  if (!hopFinder.found) return;
  const connection = headers.get("connection");
  if (connection !== null) {
    for (const token of connection.split(",")) {
      const name = token.trim().toLowerCase();
      if (name !== "" && !NOT_NOMINABLE.has(name)) headers.delete(name);
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
}

export interface CompiledHeaderRules {
  apply(headers: Headers): void;
}

export function compileHeaderRules(rules: HeaderRules | undefined): CompiledHeaderRules | undefined {
  if (!rules) return undefined;
  const remove = rules.remove ?? [];
  const set = Object.entries(rules.set ?? {});
  const add = Object.entries(rules.add ?? {});
  if (remove.length + set.length + add.length === 0) return undefined;
  return {
    apply(headers) {
      for (const name of remove) headers.delete(name);
      for (const [name, value] of set) headers.set(name, value);
      for (const [name, value] of add) headers.append(name, value);
    },
  };
}

/** Credentials an untrusted cluster must never see. */
export function stripCredentials(headers: Headers): void {
  headers.delete("authorization");
  headers.delete("cookie");
}

export interface ForwardedInfo {
  /** The request's headers as received (read here, so nothing removed from the copy can matter). */
  received: Headers;
  peerIp: string;
  /** The peer is a trusted proxy: its X-Forwarded-* and X-Forwarded-Client-Cert are kept. */
  trusted: boolean;
  proto: "http" | "https";
  host: string;
  requestId: string;
  traceparent: string;
  /** The request has none of REMOVABLE_REQUEST_FIELDS: nothing to delete. */
  plain?: boolean;
}

/** X-Forwarded-For as sent on: a trusted proxy's chain with its address appended; from anyone else, the peer alone. */
export function forwardedFor(received: Headers, peerIp: string, trusted: boolean): string {
  const prior = trusted ? received.get("x-forwarded-for") : null;
  return prior ? `${prior}, ${peerIp}` : peerIp;
}

/**
 * States who asked: X-Forwarded-For/-Proto/-Host and X-Request-Id. From an untrusted peer every
 * one is overwritten and X-Forwarded-Client-Cert and the rewrite claims removed (a client could
 * otherwise claim another address, TLS, a verified certificate or path); a trusted proxy's are kept.
 */
export function setForwarded(headers: Headers, info: ForwardedInfo): void {
  if (!info.plain) for (const name of FORGEABLE) headers.delete(name);
  headers.set("x-forwarded-for", forwardedFor(info.received, info.peerIp, info.trusted));
  const proto = info.trusted ? info.received.get("x-forwarded-proto")?.toLowerCase() : undefined;
  headers.set("x-forwarded-proto", proto === "http" || proto === "https" ? proto : info.proto);
  const host = (info.trusted ? info.received.get("x-forwarded-host") : null) ?? info.host;
  if (host !== "") headers.set("x-forwarded-host", host);
  else headers.delete("x-forwarded-host");
  if (!info.trusted && !info.plain) {
    headers.delete("x-forwarded-client-cert");
    for (const name of REWRITE_CLAIMS) headers.delete(name);
  }
  headers.set("x-request-id", info.requestId);
  headers.set("traceparent", info.traceparent);
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:\-/+=]{1,200}$/;

/** Keeps a (trusted) X-Request-Id when it is a sane token, else makes one. */
export function requestIdFrom(headers: Headers): string {
  const given = headers.get("x-request-id");
  return given !== null && REQUEST_ID_RE.test(given) ? given : crypto.randomUUID();
}

/** A valid W3C traceparent is kept as it came; otherwise a new trace starts (sampled). Tracing off: see observe/tracing.ts for the on case. */
export function traceparentFrom(headers: Headers): string {
  const given = headers.get("traceparent");
  if (parseTraceparent(given) !== undefined) return given!.trim();
  return newTraceparent();
}
