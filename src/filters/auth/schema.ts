/**
 * The top-level `auth:` section (named providers, a union on `type`) and the `auth` route filter
 * that refers to them by name. Defaults are stated on each field.
 */
import { createPublicKey } from "node:crypto";
import { z } from "zod";
import { FilePathSchema } from "../../config/file-path.ts";
import { DurationSchema, nameSchema, PositiveDurationSchema, SizeSchema, TokenSchema } from "../../config/primitives.ts";
import { ClaimsMatchSchema } from "./claims-schema.ts";
import { BEARER_HEADER, TokenSourceSchema } from "./token-source-schema.ts";

export const NameSchema = nameSchema("provider");

const HttpUrlSchema = z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" });

/** JWS algorithms (RFC 7518 §3.1, RFC 8037). `none` is not among them: unsigned tokens are never accepted. */
export const JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519", "HS256", "HS384", "HS512"] as const;
const AlgorithmSchema = z.enum(JWT_ALGORITHMS, {
  error: (issue) => (typeof issue.input === "string" && issue.input.toLowerCase() === "none"
    ? "alg none is never accepted (an unsigned token proves nothing)"
    : `must be one of ${JWT_ALGORITHMS.join(", ")}`),
});
export type JwtAlgorithm = z.infer<typeof AlgorithmSchema>;
export const isHmac = (alg: string): boolean => alg.startsWith("HS");

/** A static verification key: exactly one of jwk, pem, file or secret. */
export const StaticKeySchema = z
  .strictObject({
    /** Key id the token's `kid` must name; a key without one matches any kid. */
    kid: z.string().min(1).optional(),
    /** The one algorithm this key verifies; default any allowed algorithm of its key type. */
    alg: AlgorithmSchema.optional(),
    /** A public JWK (RFC 7517) inline. */
    jwk: z.record(z.string(), z.unknown()).optional(),
    /** A public key in PEM (SPKI, `-----BEGIN PUBLIC KEY-----`) or an X.509 certificate. */
    pem: z.string().optional(),
    /** A file holding a JWK Set (JSON `{"keys": [...]}`) or one PEM key, relative to the config file's folder; read at each (re)load. */
    file: FilePathSchema.optional(),
    /** An HMAC shared secret (HS256/384/512), at least 32 bytes (RFC 7518 §3.2); use `${ENV}`. */
    secret: z.string().min(32, "an HMAC secret needs at least 32 bytes (RFC 7518 §3.2)").optional(),
  })
  .superRefine((k, ctx) => {
    const given = (["jwk", "pem", "file", "secret"] as const).filter((f) => k[f] !== undefined);
    if (given.length !== 1) return void ctx.addIssue({ code: "custom", message: "give exactly one of jwk, pem, file or secret" });
    if (k.secret !== undefined && k.alg !== undefined && !isHmac(k.alg)) ctx.addIssue({ code: "custom", path: ["alg"], message: "a secret verifies only HS256, HS384 or HS512" });
    if (k.secret === undefined && k.alg !== undefined && isHmac(k.alg)) ctx.addIssue({ code: "custom", path: ["alg"], message: "HS algorithms take a shared secret, never a public key (algorithm confusion)" });
    const problem = k.jwk !== undefined ? publicJwkProblem(k.jwk) : k.pem !== undefined ? pemProblem(k.pem) : undefined;
    if (problem !== undefined) ctx.addIssue({ code: "custom", path: [given[0]!], message: problem });
  });
export type StaticKey = z.infer<typeof StaticKeySchema>;

/** Why a JWK cannot be a verification key, or undefined. */
export function publicJwkProblem(jwk: Record<string, unknown>): string | undefined {
  if (jwk.kty === "oct") return "a symmetric (oct) JWK is a shared secret: give it as `secret`";
  if ("d" in jwk || "priv" in jwk) return "this is a private key: give only its public part";
  try {
    createPublicKey({ key: jwk as never, format: "jwk" });
    return undefined;
  } catch (e) {
    return `not a usable public JWK (${(e as Error).message})`;
  }
}

function pemProblem(pem: string): string | undefined {
  if (/PRIVATE KEY-----/.test(pem)) return "this is a private key: give only its public part";
  try {
    createPublicKey(pem);
    return undefined;
  } catch {
    return "not a PEM public key or certificate";
  }
}

/** Fields of every provider that takes a bearer-style token (jwt, introspection). */
const tokenFields = {
  /** Where the token is read from. Default `Authorization: Bearer <token>`. */
  token: TokenSourceSchema.prefault(BEARER_HEADER),
  /** Longer tokens are refused unread (401). Default 8KiB. */
  max_token_size: SizeSchema.prefault("8KiB"),
  /** Claims that must hold: name (or dotted path) → value, or a list of which one will do. Array claims and `scope` strings match when they contain the value. */
  required_claims: ClaimsMatchSchema.default({}),
  /** Claim (or dotted path) → request header set on the upstream request. Client-sent copies of these headers are always removed. */
  forward_claims: z.record(z.string().min(1), TokenSchema).default({}),
  /** Remove the token from the request before the upstream sees it. Default false. */
  strip_token: z.boolean().default(false),
};

export const JwtProviderSchema = z
  .strictObject({
    type: z.literal("jwt"),
    /** The `iss` the token must carry (exact); with `discovery`, also where the OIDC metadata lives. */
    issuer: z.string().min(1).optional(),
    /** OIDC discovery: find the JWKS through `<issuer>/.well-known/openid-configuration`. Default false. */
    discovery: z.boolean().default(false),
    /** The JWK Set URL of the issuer. */
    jwks_url: HttpUrlSchema.optional(),
    /** Static verification keys, instead of a JWKS URL. */
    keys: z.array(StaticKeySchema).min(1).optional(),
    /** The token's `aud` must name one of these. None: `aud` is not checked. */
    audiences: z.array(z.string().min(1)).min(1).optional(),
    /** Algorithms accepted. Default the asymmetric ones (RS*, PS*, ES*, EdDSA); HS* only with a secret key. */
    algorithms: z.array(AlgorithmSchema).min(1).default(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"]),
    /** Leeway for `exp`, `nbf` and `iat` against this machine's clock. Default 30s. */
    clock_skew: DurationSchema.prefault("30s"),
    /** Refuse tokens without `exp` (they would never expire). Default true. */
    require_exp: z.boolean().default(true),
    /** Fetching the JWKS (and the discovery document). */
    jwks: z
      .strictObject({
        /** Keys are refreshed (in the background) when older than this. Default 10m. */
        cache_ttl: PositiveDurationSchema.prefault("10m"),
        /** At most one fetch per this interval, whatever the tokens' `kid`s say (a flood of unknown kids cannot hammer the issuer). Default 30s. */
        min_refetch_interval: DurationSchema.prefault("30s"),
        /** One fetch. Default 5s. */
        timeout: PositiveDurationSchema.prefault("5s"),
      })
      .prefault({}),
    /**
     * Verified tokens are remembered (by their sha256), so a client's next requests skip the
     * signature check (~0.1–0.2 ms for RS256/ES256): until the token's `exp`, at most `max_ttl`
     * — also how long a token signed by a key since removed from the JWKS may still pass.
     */
    cache: z
      .strictObject({
        /** Default 1m; 0 = every request is verified. */
        max_ttl: DurationSchema.prefault("1m"),
        /** Tokens remembered at most (least recently used dropped first). Default 10000. */
        max_entries: z.number().int().min(1).max(10_000_000).default(10_000),
      })
      .prefault({}),
    ...tokenFields,
  })
  .superRefine((p, ctx) => {
    const sources = [p.jwks_url !== undefined, p.discovery, p.keys !== undefined].filter(Boolean).length;
    if (sources !== 1) ctx.addIssue({ code: "custom", path: ["jwks_url"], message: "give exactly one of jwks_url, discovery: true (with issuer) or keys" });
    if (p.discovery && p.issuer === undefined) ctx.addIssue({ code: "custom", path: ["issuer"], message: "discovery needs the issuer URL" });
    if (p.discovery && p.issuer !== undefined && !/^https?:\/\//.test(p.issuer)) ctx.addIssue({ code: "custom", path: ["issuer"], message: "with discovery the issuer must be an http(s) URL" });
    const hmac = p.algorithms.filter(isHmac);
    if (hmac.length > 0 && !(p.keys ?? []).some((k) => k.secret !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["algorithms"], message: `${hmac.join(", ")} need a shared secret in keys (never a public key or a JWKS: algorithm confusion)` });
    }
  });

export const IntrospectionProviderSchema = z.strictObject({
  type: z.literal("introspection"),
  /** The RFC 7662 introspection endpoint (the token is POSTed there, form-encoded). */
  endpoint: HttpUrlSchema,
  /** This proxy's client credentials at the authorization server (use `${ENV}` for the secret). */
  client_id: z.string().min(1),
  client_secret: z.string().min(1),
  /** `basic` (client_secret_basic, HTTP Basic) or `post` (client_secret_post, in the form). Default basic. */
  client_auth: z.enum(["basic", "post"]).default("basic"),
  /** Sent as `token_type_hint`. Default access_token. */
  token_type_hint: z.string().min(1).default("access_token"),
  /** One introspection call. Default 2s. */
  timeout: PositiveDurationSchema.prefault("2s"),
  /** When the endpoint fails or times out: `unavailable` (503 auth_unavailable) or `deny` (401). Default unavailable. */
  on_error: z.enum(["unavailable", "deny"]).default("unavailable"),
  /** The token's `aud` must name one of these. None: not checked. */
  audiences: z.array(z.string().min(1)).min(1).optional(),
  cache: z
    .strictObject({
      /** An active token's answer is kept until its `exp`, but at most this long. Default 5m; 0 = no cache. */
      max_ttl: DurationSchema.prefault("5m"),
      /** An inactive token's answer is kept this long. Default 10s; 0 = not kept. */
      negative_ttl: DurationSchema.prefault("10s"),
      /** Tokens remembered at most (least recently used dropped first). Default 10000. */
      max_entries: z.number().int().min(1).max(10_000_000).default(10_000),
    })
    .prefault({}),
  ...tokenFields,
});

/** Request facts an ext_authz cache key may include besides the selected headers. */
export const EXT_AUTHZ_KEY_PARTS = ["method", "path", "client_ip"] as const;

export const ExtAuthzProviderSchema = z.strictObject({
  type: z.literal("ext_authz"),
  /**
   * The authorization service (Envoy's ext_authz over HTTP, Traefik's ForwardAuth): it gets a GET
   * with the selected headers plus X-Forwarded-Method, -Uri, -For, -Host and -Proto; a 2xx allows.
   */
  url: HttpUrlSchema,
  /** Client request headers sent to the service. Default authorization and cookie. */
  headers: z.array(TokenSchema).default(["authorization", "cookie"]),
  /** Headers of an allowing answer copied onto the upstream request (client-sent copies always removed). */
  upstream_headers: z.array(TokenSchema).default([]),
  /** Headers of a denying answer passed to the client with its status and body. Default www-authenticate, location, content-type. */
  client_headers: z.array(TokenSchema).default(["www-authenticate", "location", "content-type"]),
  /** A header of the allowing answer naming the caller (the identity's subject in logs and rules). */
  subject_header: TokenSchema.optional(),
  /** One call. Default 1s. */
  timeout: PositiveDurationSchema.prefault("1s"),
  /** When the service fails, times out or answers 5xx: `deny` (status_on_error) or `allow`. Default deny. */
  failure_mode: z.enum(["deny", "allow"]).default("deny"),
  /** The status of a denial for a failed service. Default 403 (as Envoy). */
  status_on_error: z.number().int().min(400).max(599).default(403),
  /** Largest answer body read; a larger answer counts as a failure of the service. Default 64KiB. */
  max_body: SizeSchema.prefault("64KiB"),
  cache: z
    .strictObject({
      /** How long a decision is reused. Default 0 (none). */
      ttl: DurationSchema.prefault("0"),
      /** Decisions remembered at most. Default 10000. */
      max_entries: z.number().int().min(1).max(10_000_000).default(10_000),
      /** Request facts the key includes besides the selected headers, the host and the scheme (always in it). Default all: method, path (with query), client_ip. */
      key: z.array(z.enum(EXT_AUTHZ_KEY_PARTS)).default([...EXT_AUTHZ_KEY_PARTS]),
    })
    .prefault({}),
});

/** One API key: who it is, its tier (for rate limits and rules), and the sha256 hex of the key. */
export const ApiKeyEntrySchema = z.strictObject({
  name: z.string().min(1),
  tier: z.string().min(1).optional(),
  /** `switchyard hash-key` prints it. The key itself is never stored. */
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "must be the 64 hex digits of a sha256 (switchyard hash-key KEY)").transform((h) => h.toLowerCase()),
});
export type ApiKeyEntry = z.infer<typeof ApiKeyEntrySchema>;
export const ApiKeyListSchema = z.array(ApiKeyEntrySchema);

export const ApiKeyProviderSchema = z
  .strictObject({
    type: z.literal("api_key"),
    /** The request header carrying the key. Default x-api-key. */
    header: TokenSchema.default("x-api-key"),
    /** Also accept the key from this query parameter (discouraged: URLs end up in logs). None by default. */
    query: TokenSchema.optional(),
    /** Keys inline (hashed). */
    keys: ApiKeyListSchema.default([]),
    /** A YAML or JSON file with a list of {name, tier, sha256}, relative to the config file's folder; read at each (re)load. */
    keys_file: FilePathSchema.optional(),
    /** Remove the key from the request before the upstream sees it. Default true. */
    strip_key: z.boolean().default(true),
  })
  .refine((p) => p.keys.length > 0 || p.keys_file !== undefined, { message: "give keys or keys_file", path: ["keys"] })
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.keys.forEach((k, i) => {
      if (seen.has(k.sha256)) ctx.addIssue({ code: "custom", path: ["keys", i, "sha256"], message: "the same key is listed twice" });
      seen.add(k.sha256);
    });
  });

export const AuthProviderSchema = z.discriminatedUnion("type", [JwtProviderSchema, IntrospectionProviderSchema, ExtAuthzProviderSchema, ApiKeyProviderSchema]);
/** The top-level `auth:` section: provider name → provider. */
export const AuthProvidersSchema = z.record(NameSchema, AuthProviderSchema);

export type JwtProviderConfig = z.infer<typeof JwtProviderSchema>;
export type IntrospectionProviderConfig = z.infer<typeof IntrospectionProviderSchema>;
export type ExtAuthzProviderConfig = z.infer<typeof ExtAuthzProviderSchema>;
export type ApiKeyProviderConfig = z.infer<typeof ApiKeyProviderSchema>;
export type AuthProviderConfig = z.infer<typeof AuthProviderSchema>;

/** The `auth` filter: who is calling, by the named providers in order (the first that accepts wins). */
export const AuthFilterSchema = z.strictObject({
  type: z.literal("auth"),
  /** Names from the top-level `auth:` section, tried in order. */
  providers: z.array(NameSchema).min(1),
  /** Let requests without any credential through (unauthenticated); a present but invalid one is still 401. Default false. */
  optional: z.boolean().default(false),
  /** The realm of the WWW-Authenticate challenge. Default switchyard. */
  realm: z.string().regex(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/, "printable ASCII without quotes or backslashes").default("switchyard"),
});

export type AuthFilterConfig = z.infer<typeof AuthFilterSchema>;
