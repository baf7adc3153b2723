/**
 * What the token providers (jwt, introspection) share: read the token from its source, have it
 * verified (the provider's own part), check the required claims, forward claims as headers.
 */
import type { AuthIdentity } from "../../proxy/context.ts";
import { type Claims, compileClaimsMatch, forwardedHeaders } from "./claims.ts";
import { ABSENT, type AuthProvider, invalidToken, type Outcome } from "./provider.ts";
import type { IntrospectionProviderConfig, JwtProviderConfig } from "./schema.ts";
import { compileSource, REPEATED } from "./token-source.ts";

/** The token fields every token provider's config has (schema.ts: tokenFields). */
export type TokenFields = Pick<JwtProviderConfig | IntrospectionProviderConfig, "token" | "max_token_size" | "required_claims" | "forward_claims" | "strip_token">;

/** A token the provider vouches for: its claims and who it names. */
export interface Verified {
  readonly claims: Claims;
  readonly subject: string | undefined;
}

export function tokenProvider(
  name: string, kind: AuthIdentity["kind"], config: TokenFields, verify: (token: string) => Promise<Verified | Outcome>,
): AuthProvider {
  const source = compileSource(config.token);
  const requiredClaims = compileClaimsMatch(config.required_claims);
  const forward = Object.entries(config.forward_claims);
  return {
    name,
    challenge: "Bearer",
    expects: source.describe,
    ownedHeaders: forward.map(([, header]) => header.toLowerCase()),
    strip: config.strip_token ? source.strip : undefined,
    presented: (request) => source.read(request) !== undefined,
    async authenticate(ctx) {
      const token = source.read(ctx);
      if (token === undefined) return ABSENT;
      if (token === REPEATED) return invalidToken("the token is given more than once");
      if (token === "") return invalidToken("the token is empty");
      // Refused unread: nothing parses or sends on a token of any size.
      if (token.length > config.max_token_size) return invalidToken(`the token is over ${config.max_token_size} bytes`);
      const verified = await verify(token);
      if ("result" in verified) return verified;
      const failed = requiredClaims(verified.claims);
      if (failed !== undefined) return invalidToken(`the token's ${failed} claim does not have a required value`);
      return {
        result: "accepted",
        identity: { provider: name, kind, subject: verified.subject, claims: verified.claims },
        upstream: forwardedHeaders(forward, verified.claims),
      };
    },
  };
}
