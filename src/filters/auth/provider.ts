/** What every auth provider (jwt, introspection, ext_authz, api_key) offers the `auth` filter. */
import type { AuthIdentity, ProxyContext } from "../../proxy/context.ts";
import type { SwitchyardError } from "../../util/errors.ts";

/** A header to set on the upstream request once the credential is accepted (forwarded claims, ext_authz headers). */
export type UpstreamHeader = readonly [name: string, value: string];

export type Outcome =
  /** No credential for this provider on the request: the next provider may find one. */
  | { readonly result: "absent" }
  | { readonly result: "accepted"; readonly identity: AuthIdentity; readonly upstream: readonly UpstreamHeader[] }
  /** A credential that does not pass. `description` is safe to show (never the credential itself). */
  | { readonly result: "rejected"; readonly code: "invalid_token" | "invalid_api_key"; readonly description: string }
  /** An external service's own refusal, passed to the client as it is (ext_authz). */
  | { readonly result: "denied"; readonly response: Response }
  /** The credential could not be checked (an endpoint down, keys not fetched). */
  | { readonly result: "unavailable"; readonly error: SwitchyardError };

export interface AuthProvider {
  readonly name: string;
  /** The WWW-Authenticate scheme this provider answers to (RFC 9110 §11.6.1), if any. */
  readonly challenge: "Bearer" | "ApiKey" | undefined;
  /** Where the credential is expected, for the message of a 401 without one. */
  readonly expects: string | undefined;
  /** Upstream request headers only this provider sets: a client-sent copy is always removed. */
  readonly ownedHeaders: readonly string[];
  authenticate(ctx: ProxyContext): Outcome | Promise<Outcome>;
  /**
   * Whether `request` carries a credential for this provider (unchecked): authenticate would not
   * answer "absent". For the route-test tool, which cannot verify credentials.
   */
  presented(request: CredentialCarrier): boolean;
  /** When configured to take the credential off the request before the upstream: how. */
  readonly strip: CredentialStrip | undefined;
}

/** What a credential is read from: the request's headers and raw query (a ProxyContext, or the route-test tool's request). */
export type CredentialCarrier = Pick<ProxyContext, "headers" | "query">;

/** Where a credential is removed: from the upstream request's headers, or a query parameter of its URL. */
export interface CredentialStrip {
  headers?(headers: Headers): void;
  query?: string;
}

export const ABSENT: Outcome = Object.freeze({ result: "absent" });

/** A bearer token that does not pass (RFC 6750 §3.1 invalid_token). */
export const invalidToken = (description: string): Outcome => ({ result: "rejected", code: "invalid_token", description });

/** A quoted-string parameter value as RFC 6750 §3 allows it (no `"` or `\`, printable ASCII). */
export function challengeText(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "?");
}
