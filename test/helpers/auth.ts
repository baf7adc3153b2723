/** Auth test peers: signing keys made with jose at test time, a JWKS/OIDC issuer, and counters of the calls each service gets. */
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { startUpstream, type Upstream } from "./upstream.ts";

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

export async function signingKey(kid: string, alg = "RS256"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

/** A signed token; `claims` are merged over iss/aud/sub/iat/exp defaults (exp one hour ahead). */
export function sign(key: SigningKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iat: now, exp: now + 3600, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** base64url of a string or bytes. */
export const b64url = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

/** An issuer serving its JWKS (and OIDC metadata) on 127.0.0.1; `keys` can change (rotation) and `down` fails every request. */
export interface Issuer {
  server: Upstream;
  origin: string;
  jwksUrl: string;
  keys: JWK[];
  calls: { jwks: number; discovery: number };
  /** performance.now() when the JWKS was last asked for (a provider's fetch started just before). */
  lastJwksAt: number;
  down: boolean;
  stop(): void;
}

export function startIssuer(keys: JWK[]): Issuer {
  const issuer: Issuer = {
    server: undefined as unknown as Upstream,
    origin: "",
    jwksUrl: "",
    keys,
    calls: { jwks: 0, discovery: 0 },
    lastJwksAt: Number.NEGATIVE_INFINITY,
    down: false,
    stop: () => issuer.server.stop(true),
  };
  issuer.server = startUpstream((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/.well-known/openid-configuration") {
      issuer.calls.discovery++;
      if (issuer.down) return new Response("down", { status: 503 });
      return Response.json({ issuer: issuer.origin, jwks_uri: issuer.jwksUrl, id_token_signing_alg_values_supported: ["RS256"] });
    }
    if (path === "/jwks") {
      issuer.calls.jwks++;
      issuer.lastJwksAt = performance.now();
      if (issuer.down) return new Response("down", { status: 503 });
      return Response.json({ keys: issuer.keys });
    }
    return new Response("not found", { status: 404 });
  });
  issuer.origin = issuer.server.origin;
  issuer.jwksUrl = `${issuer.origin}/jwks`;
  return issuer;
}

/** The JSON error body of a proxy-made response. */
export async function errorOf(res: Response): Promise<{ error: string; message: string; request_id: string }> {
  return (await res.json()) as { error: string; message: string; request_id: string };
}
