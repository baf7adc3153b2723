/**
 * Header handling on the way up and down (RFC 9110 §7.6.1: hop-by-hop fields are not forwarded).
 * Rule sets are compiled at build time; per request they are plain loops over small arrays.
 */
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent, SAMPLED } from "../observe/trace-context.ts";
import type { HeaderRules } from "./route-schema.ts";

/** Fields that describe one connection, never the message (RFC 9110 §7.6.1, RFC 9112 §6, §7). */
const HOP_BY_HOP = [
  "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
  "proxy-authorization", "proxy-authenticate",
];

/** Removes hop-by-hop fields and every field that `Connection` names. */
export function stripHopByHop(headers: Headers): void {
  const connection = headers.get("connection");
  if (connection !== null) {
    for (const token of connection.split(",")) {
      const name = token.trim().toLowerCase();
      if (name !== "") headers.delete(name);
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

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Credentials an untrusted cluster must never see. */
export function stripCredentials(headers: Headers): void {
  headers.delete("authorization");
  headers.delete("cookie");
}

export interface ForwardedInfo {
  clientIp: string;
  proto: "http" | "https";
  host: string;
  requestId: string;
  traceparent: string;
}

/**
 * X-Forwarded-For is appended to (the chain is the client's business plus ours); -Proto and -Host
 * are overwritten, since a client could otherwise claim to have arrived over TLS.
 */
/** Forwarding fields a client could forge; this proxy states its own (X-Forwarded-*) instead. */
const FORGEABLE = ["forwarded", "x-forwarded-port", "x-forwarded-server", "x-real-ip"];

export function setForwarded(headers: Headers, info: ForwardedInfo): void {
  for (const name of FORGEABLE) headers.delete(name);
  const prior = headers.get("x-forwarded-for");
  headers.set("x-forwarded-for", prior ? `${prior}, ${info.clientIp}` : info.clientIp);
  headers.set("x-forwarded-proto", info.proto);
  if (info.host !== "") headers.set("x-forwarded-host", info.host);
  else headers.delete("x-forwarded-host");
  headers.set("x-request-id", info.requestId);
  headers.set("traceparent", info.traceparent);
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:\-/+=]{1,200}$/;

/** Keeps a client's X-Request-Id when it is a sane token, else makes one. */
export function requestIdFrom(headers: Headers): string {
  const given = headers.get("x-request-id");
  return given !== null && REQUEST_ID_RE.test(given) ? given : crypto.randomUUID();
}

/** A valid W3C traceparent is kept as it came; otherwise a new trace starts (sampled). Tracing off: see observe/tracing.ts for the on case. */
export function traceparentFrom(headers: Headers): string {
  const given = headers.get("traceparent");
  if (parseTraceparent(given) !== undefined) return given!.trim();
  return formatTraceparent(newTraceId(), newSpanId(), SAMPLED);
}
