/**
 * The jwt provider: a bearer token verified with jose (RFC 7519, RFC 7515) — signature by a key
 * from the issuer's JWKS or static keys, `alg` from the allowed list (never `none`), `iss`, `aud`,
 * `exp`/`nbf` with clock skew, then the configured required claims.
 */
import { errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from "jose";
import { SwitchyardError } from "../../util/errors.ts";
import { KeysUnavailable, RemoteKeys, staticKeys } from "./jwt-keys.ts";
import { type AuthProvider, invalidToken, type Outcome } from "./provider.ts";
import type { JwtProviderConfig } from "./schema.ts";
import { tokenProvider, type Verified } from "./token-provider.ts";
import { TtlCache } from "./ttl-cache.ts";

export function jwtProvider(name: string, config: JwtProviderConfig, now: () => number = Date.now): AuthProvider {
  const keys: JWTVerifyGetKey = config.keys !== undefined ? staticKeys(config.keys) : new RemoteKeys(name, config).getKey;
  const options: JWTVerifyOptions = {
    algorithms: config.algorithms,
    issuer: config.issuer,
    audience: config.audiences,
    clockTolerance: config.clock_skew / 1000,
    requiredClaims: config.require_exp ? ["exp"] : [],
  };
  // Only accepted tokens are kept, by digest (the cache never holds a token), until exp or max_ttl.
  const maxTtl = config.cache.max_ttl;
  const verified = maxTtl > 0 ? new TtlCache<Verified>(config.cache.max_entries, now) : undefined;
  const ttlOf = (payload: JWTPayload) => Math.min(maxTtl, typeof payload.exp === "number" ? payload.exp * 1000 - now() : maxTtl);
  return tokenProvider(name, "jwt", config, async function verifyJwt(token): Promise<Verified | Outcome> {
    const key = verified === undefined ? undefined : new Bun.CryptoHasher("sha256").update(token).digest("base64");
    const cached = key === undefined ? undefined : verified!.get(key);
    if (cached !== undefined) return cached;
    try {
      const payload = await verify(token, keys, options);
      const result: Verified = { claims: Object.freeze(payload), subject: typeof payload.sub === "string" ? payload.sub : undefined };
      if (key !== undefined) verified!.set(key, result, ttlOf(payload));
      return result;
    } catch (e) {
      if (!(e instanceof KeysUnavailable)) return invalidToken(describeFailure(e));
      return { result: "unavailable", error: new SwitchyardError({ code: "auth_unavailable", status: 503, source: "internal", message: e.message }) };
    }
  });
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
