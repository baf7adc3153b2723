/**
 * Verification keys for the jwt provider: static ones (inline JWK/PEM, a file, HMAC secrets), or
 * a JWK Set fetched from the issuer (directly or through OIDC discovery) and kept in memory.
 *
 * A fetched set is refreshed in the background once older than cache_ttl, and fetched again when
 * a token names a kid it lacks (key rotation) — but never more often than min_refetch_interval,
 * so a flood of tokens with made-up kids costs the issuer one request per interval. A failed
 * fetch keeps the keys already held.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { createLocalJWKSet, errors, type JWK, type JWTVerifyGetKey } from "jose";
import { callBackend, jsonObject } from "./backend.ts";
import { isHmac, type JwtAlgorithm, type JwtProviderConfig, publicJwkProblem, type StaticKey } from "./schema.ts";

/** The largest JWKS or discovery document read. */
const MAX_DOCUMENT = 1024 * 1024;

/** No key set could be had (never fetched, or the issuer unreachable): the token cannot be checked. */
export class KeysUnavailable extends Error {}

/** A public key as a JWK with the kid and alg the config gives it. */
function publicJwk(source: Record<string, unknown> | string, kid: string | undefined, alg: JwtAlgorithm | undefined, where: string): JWK {
  let jwk: JWK;
  if (typeof source === "string") {
    try {
      jwk = createPublicKey(source).export({ format: "jwk" }) as JWK;
    } catch {
      throw new Error(`${where}: not a PEM public key or certificate`);
    }
  } else {
    const problem = publicJwkProblem(source);
    if (problem !== undefined) throw new Error(`${where}: ${problem}`);
    jwk = { ...source } as JWK;
  }
  if (kid !== undefined) jwk.kid = kid;
  if (alg !== undefined) jwk.alg = alg;
  return jwk;
}

/** The keys of a `file:` entry: a JWK Set, one JWK, or one PEM key (read at build time; failure refuses the config). */
function keysOfFile(key: StaticKey): JWK[] {
  const path = key.file!;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`key file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!text.trimStart().startsWith("{")) return [publicJwk(text, key.kid, key.alg, `key file ${path}`)];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`key file ${path}: not valid JSON`);
  }
  const list = (doc as { keys?: unknown }).keys;
  const jwks = Array.isArray(list) ? list : [doc];
  return jwks.map((k, i) => publicJwk(k as Record<string, unknown>, key.kid ?? (k as JWK).kid, key.alg ?? ((k as JWK).alg as JwtAlgorithm | undefined), `key file ${path} key ${i}`));
}

/**
 * A jose key lookup over static keys. Public keys are matched by kty and alg (an RSA key never
 * verifies an HS256 token: no algorithm confusion); a key with a kid only matches tokens naming
 * it, one without a kid matches any. HMAC secrets verify only HS* tokens.
 */
export function staticKeys(keys: readonly StaticKey[]): JWTVerifyGetKey {
  const publicKeys: JWK[] = [];
  const secrets: { kid?: string; alg?: string; bytes: Uint8Array }[] = [];
  keys.forEach((k, i) => {
    if (k.secret !== undefined) secrets.push({ kid: k.kid, alg: k.alg, bytes: new TextEncoder().encode(k.secret) });
    else if (k.file !== undefined) publicKeys.push(...keysOfFile(k));
    else publicKeys.push(publicJwk(k.jwk ?? k.pem!, k.kid, k.alg, `keys[${i}]`));
  });
  const all = createLocalJWKSet({ keys: publicKeys });
  const unnamed = createLocalJWKSet({ keys: publicKeys.filter((k) => k.kid === undefined) });
  return async (header, token) => {
    if (typeof header.alg === "string" && isHmac(header.alg)) {
      const found = secrets.find((s) => (s.kid === undefined || s.kid === header.kid) && (s.alg === undefined || s.alg === header.alg));
      if (found === undefined) throw new errors.JWKSNoMatchingKey();
      return found.bytes;
    }
    if (header.kid === undefined) return all(header, token);
    try {
      return await all(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey)) throw e;
      return unnamed({ ...header, kid: undefined }, token);
    }
  };
}

type RemoteConfig = Pick<JwtProviderConfig, "jwks_url" | "issuer" | "discovery" | "jwks">;

/** A JWK Set fetched from the issuer, shared by every route that names the provider. */
export class RemoteKeys {
  private set: JWTVerifyGetKey | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;
  /** Found through discovery (forgotten when a fetch from it fails: the issuer may have moved it). */
  private discovered: string | undefined;
  private lastError = "not fetched yet";

  constructor(
    private readonly provider: string,
    private readonly config: RemoteConfig,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (this.set === undefined) await this.refresh();
    else if (this.now() - this.fetchedAt > this.config.jwks.cache_ttl) void this.refresh();
    const held = this.set;
    if (held === undefined) throw new KeysUnavailable(`the issuer's keys could not be fetched: ${this.lastError}`);
    try {
      return await held(header, token);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey)) throw e;
      // A kid we do not know: perhaps the issuer rotated its keys. Look again (rate-limited).
      await this.refresh();
      if (this.set === held) throw e;
      return this.set!(header, token);
    }
  };

  /** Fetches the set, unless a fetch started within min_refetch_interval; concurrent callers share one fetch. */
  refresh(): Promise<void> {
    if (this.refreshing !== undefined) return this.refreshing;
    const now = this.now();
    if (now - this.lastAttempt < this.config.jwks.min_refetch_interval) return Promise.resolve();
    this.lastAttempt = now;
    this.refreshing = this.fetchSet().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async fetchSet(): Promise<void> {
    const url = this.config.jwks_url ?? (this.discovered ??= await this.discover());
    if (url === undefined) return;
    const problem = await this.load(url);
    if (problem === undefined) return;
    this.lastError = `${url}: ${problem}`;
    this.discovered = undefined;
    logProblem(this.provider, "fetching the JWKS failed; keeping the keys held", this.lastError);
  }

  /** Loads the set at `url`: undefined when done, else what went wrong. */
  private async load(url: string): Promise<string | undefined> {
    const answer = await callBackend(this.provider, url, { timeout: this.config.jwks.timeout, maxBody: MAX_DOCUMENT, headers: { accept: "application/json" } });
    if ("error" in answer) return answer.error;
    if (answer.status !== 200) return `answered ${answer.status}`;
    const doc = jsonObject(answer.body);
    if (doc === undefined || !Array.isArray(doc.keys)) return "not a JWK Set";
    // Only public keys: a symmetric or private key published in a JWKS is never used.
    const keys = doc.keys.filter((k): k is JWK => k !== null && typeof k === "object" && typeof (k as JWK).kty === "string" && (k as JWK).kty !== "oct" && !("d" in k));
    try {
      this.set = createLocalJWKSet({ keys });
    } catch {
      return "not a JWK Set";
    }
    this.fetchedAt = this.now();
    return undefined;
  }

  /** The jwks_uri of the issuer's OpenID Provider metadata (OIDC Discovery 1.0 §4), or undefined after logging why not. */
  private async discover(): Promise<string | undefined> {
    const issuer = this.config.issuer!;
    const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
    const answer = await callBackend(this.provider, url, { timeout: this.config.jwks.timeout, maxBody: MAX_DOCUMENT, headers: { accept: "application/json" } });
    let problem: string | undefined;
    let jwksUri: unknown;
    if ("error" in answer) problem = answer.error;
    else if (answer.status !== 200) problem = `answered ${answer.status}`;
    else {
      const doc = jsonObject(answer.body);
      jwksUri = doc?.jwks_uri;
      // §4.3: the metadata's issuer must be the one configured, or its keys are someone else's.
      if (doc === undefined) problem = "not a JSON object";
      else if (doc.issuer !== issuer) problem = `its issuer ${JSON.stringify(doc.issuer)} is not ${JSON.stringify(issuer)}`;
      else if (typeof jwksUri !== "string" || !/^https?:\/\//.test(jwksUri)) problem = "it has no http(s) jwks_uri";
    }
    if (problem === undefined) return jwksUri as string;
    this.lastError = `${url}: ${problem}`;
    logProblem(this.provider, "OIDC discovery failed", this.lastError);
    return undefined;
  }
}

function logProblem(provider: string, msg: string, error: string): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), level: "warn", msg, provider, error }));
}
