/**
 * The identity of a verified client certificate (mTLS), and its `x-forwarded-client-cert` form.
 * Pure functions over node:crypto's X509Certificate; the TLS front (server/mtls-front.ts) calls
 * them once per connection.
 */
import type { X509Certificate } from "node:crypto";

/** The verified client certificate of an mTLS connection (security/client-identity.ts). */
export interface ClientIdentity {
  /** RFC 4514, last RDN first: `CN=web,O=Acme,C=US`. */
  subject: string;
  /** DNS subject alternative names. */
  sans: string[];
  /** URI subject alternative names (SPIFFE IDs: `spiffe://trust-domain/path`). */
  uris: string[];
  /** SHA-256 of the certificate (DER), lowercase hex without colons. */
  fingerprint256: string;
}


export const XFCC = "x-forwarded-client-cert";

/**
 * The subject as an RFC 4514 string: RDNs from last to first, so a usual certificate reads
 * `CN=web,O=Acme,C=US`. Node already escapes each value RFC 2253-style (`O=Acme\, Inc.`), one
 * RDN per line in certificate order.
 */
export function subjectString(cert: X509Certificate): string {
  return cert.subject.split("\n").filter(Boolean).reverse().join(",");
}

/**
 * Node's `subjectAltName`: entries `TYPE:value` joined by ", "; a value holding a comma, quote or
 * other special character is written as a JSON string (`DNS:"a\u002c b"`), so a hostile SAN
 * cannot pose as two. Returns [type, value] pairs.
 */
export function parseSubjectAltName(text: string | undefined): [string, string][] {
  const out: [string, string][] = [];
  if (!text) return out;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // A JSON string: find its closing quote (one not escaped by a backslash).
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        value = text.slice(colon + 2, j);
      }
      next = j + 1;
    } else {
      const comma = text.indexOf(", ", colon + 1);
      next = comma === -1 ? text.length : comma;
      value = text.slice(colon + 1, next);
    }
    out.push([type, value]);
    i = text.startsWith(", ", next) ? next + 2 : next + 1;
  }
  return out;
}

/** What later phases (authorization, logs, XFCC) know of a verified client certificate. */
export function identityOf(cert: X509Certificate): ClientIdentity {
  const sans: string[] = [];
  const uris: string[] = [];
  for (const [type, value] of parseSubjectAltName(cert.subjectAltName)) {
    if (type === "DNS") sans.push(value);
    else if (type === "URI") uris.push(value);
  }
  return {
    subject: subjectString(cert),
    sans,
    uris,
    fingerprint256: cert.fingerprint256.replaceAll(":", "").toLowerCase(),
  };
}

/** Bytes outside printable ASCII, percent-encoded: a certificate may hold anything, a header value may not (CR/LF would split it). */
function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/gu, (ch) => {
    try {
      return encodeURIComponent(ch);
    } catch {
      return "%EF%BF%BD"; // a lone surrogate: U+FFFD
    }
  });
}

/** Double-quoted, `"` and `\` escaped (Envoy's rules for XFCC values). */
function quoted(value: string): string {
  return `"${printable(value).replace(/[\\"]/g, "\\$&")}"`;
}

/** Quoted only when the value holds a character XFCC uses as syntax (`, ; = "`), or a space or backslash. */
function xfccPart(value: string): string {
  const text = printable(value);
  return /[,;="\\ ]/.test(text) ? quoted(value) : text;
}

/** `Hash=<sha-256 hex>;Subject="…";URI=…;DNS=…` (Envoy's x-forwarded-client-cert element; Subject always quoted). */
export function xfccValue(identity: ClientIdentity): string {
  let out = `Hash=${identity.fingerprint256};Subject=${quoted(identity.subject)}`;
  for (const uri of identity.uris) out += `;URI=${xfccPart(uri)}`;
  for (const dns of identity.sans) out += `;DNS=${xfccPart(dns)}`;
  return out;
}
