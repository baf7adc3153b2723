/**
 * The jwt provider: a bearer token verified with jose (RFC 7519, RFC 7515) — signature by a key
 * from the issuer's JWKS or static keys, `alg` from the allowed list (never `none`), `iss`, `aud`,
 * `exp`/`nbf` with clock skew, then the configured required claims.
 */
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from "jose";
import { SwitchyardError } from "../../proxy/errors.ts";
import { compileClaimsMatch, forwardedHeaders } from "./claims.ts";
import { KeysUnavailable, RemoteKeys, staticKeys } from "./jwt-keys.ts";
import { type AuthProvider, invalidToken, readToken } from "./provider.ts";
import type { JwtProviderConfig } from "./schema.ts";
import { compileSource } from "./token-source.ts";

export function jwtProvider(name: string, config: JwtProviderConfig): AuthProvider {
  const source = compileSource(config.token);
  const keys: JWTVerifyGetKey = config.keys !== undefined ? staticKeys(config.keys) : new RemoteKeys(name, config).getKey;
  const options: JWTVerifyOptions = {
    algorithms: config.algorithms,
    issuer: config.issuer,
    audience: config.audiences,
    clockTolerance: config.clock_skew / 1000,
    requiredClaims: config.require_exp ? ["exp"] : [],
  };
  const requiredClaims = compileClaimsMatch(config.required_claims);
  const forward = Object.entries(config.forward_claims);

  return {
    name,
    challenge: "Bearer",
    expects: source.describe,
    ownedHeaders: forward.map(([, header]) => header.toLowerCase()),
    strip: config.strip_token ? source.strip : undefined,
    async authenticate(ctx) {
      const token = readToken(source, ctx, config.max_token_size);
      if (typeof token !== "string") return token;
      let payload: JWTPayload;
      try {
        payload = await verify(token, keys, options);
      } catch (e) {
        if (e instanceof KeysUnavailable) {
          return { result: "unavailable", error: new SwitchyardError({ code: "auth_unavailable", status: 503, source: "internal", message: e.message }) };
        }
        return invalidToken(describeFailure(e));
      }
      const failed = requiredClaims(payload);
      if (failed !== undefined) return invalidToken(`the token's ${failed} claim does not have a required value`);
      const upstream = forwardedHeaders(forward, payload);
      return {
        result: "accepted",
        identity: { provider: name, kind: "jwt", subject: typeof payload.sub === "string" ? payload.sub : undefined, claims: payload },
        upstream,
      };
    },
  };
}

/** jwtVerify, trying each key when several match the token's kid and alg (jose leaves that to the caller). */
async function verify(token: string, keys: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, keys, options)).payload;
  } catch (e) {
    if (!(e instanceof errors.JWKSMultipleMatchingKeys)) throw e;
    for await (const key of e as errors.JWKSMultipleMatchingKeys & AsyncIterable<CryptoKey>) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/** Why jose refused a token, in words safe for error_description (never the token's contents). */
function describeFailure(e: unknown): string {
  if (e instanceof errors.JWTExpired) return "the token has expired";
  if (e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case "nbf": return "the token is not valid yet";
      case "iat": return "the token was issued in the future";
      case "iss": return "the token's issuer is not accepted";
      case "aud": return "the token's audience is not accepted";
      case "exp": return "the token has no valid exp claim";
      default: return "the token's claims are not valid";
    }
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not accepted";
  if (e instanceof errors.JOSENotSupported) return "the token's algorithm is not supported";
  if (e instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (e instanceof errors.JWKSNoMatchingKey) return "no key matches the token's kid and alg";
  return "the token is malformed";
}
