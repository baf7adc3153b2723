/**
 * The introspection provider: an opaque token checked by the authorization server (RFC 7662).
 * Answers are cached by the token's sha256 (the cache never holds a token): an active one until
 * its `exp` but at most max_ttl, an inactive one for negative_ttl; concurrent requests with the
 * same token share one call. A failed call is never cached.
 */
import { SwitchyardError } from "../../util/errors.ts";
import { callBackend, jsonObject } from "./backend.ts";
import type { Claims } from "./claims.ts";
import { type AuthProvider, invalidToken, type Outcome } from "./provider.ts";
import type { IntrospectionProviderConfig } from "./schema.ts";
import { tokenProvider, type Verified } from "./token-provider.ts";
import { TtlCache } from "./ttl-cache.ts";

const MAX_ANSWER = 256 * 1024;

type Answer = { readonly active: true; readonly claims: Claims } | { readonly active: false } | { readonly failed: string };

export function introspectionProvider(name: string, config: IntrospectionProviderConfig, now: () => number = Date.now): AuthProvider {
  const cache = new TtlCache<Answer>(config.cache.max_entries, now);
  const audiences = config.audiences === undefined ? undefined : new Set(config.audiences);
  const basic = `Basic ${btoa(`${encodeURIComponent(config.client_id)}:${encodeURIComponent(config.client_secret)}`)}`;

  /** How long an answer is kept: until the token's exp, within max_ttl; a failure not at all. */
  const ttlOf = (answer: Answer): number => {
    if ("failed" in answer) return 0;
    if (!answer.active) return config.cache.negative_ttl;
    const exp = answer.claims.exp;
    return typeof exp === "number" ? Math.min(config.cache.max_ttl, exp * 1000 - now()) : config.cache.max_ttl;
  };

  async function introspect(token: string): Promise<Answer> {
    const form = new URLSearchParams({ token, token_type_hint: config.token_type_hint });
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
    // RFC 6749 §2.3.1: client_secret_basic form-encodes the id and secret before base64.
    if (config.client_auth === "basic") headers.authorization = basic;
    else {
      form.set("client_id", config.client_id);
      form.set("client_secret", config.client_secret);
    }
    const answer = await callBackend(name, config.endpoint, { method: "POST", headers, body: form.toString(), timeout: config.timeout, maxBody: MAX_ANSWER });
    if ("error" in answer) return { failed: answer.error };
    if (answer.status !== 200) return { failed: `answered ${answer.status}` };
    const doc = jsonObject(answer.body);
    if (doc === undefined || typeof doc.active !== "boolean") return { failed: "answered without a boolean active member" };
    return doc.active ? { active: true, claims: doc } : { active: false };
  }

  return tokenProvider(name, "introspection", config, async function checkToken(token): Promise<Verified | Outcome> {
    const key = new Bun.CryptoHasher("sha256").update(token).digest("hex");
    const answer = await cache.load(key, () => introspect(token), ttlOf);
    if ("failed" in answer) {
      const message = `the token could not be introspected: ${answer.failed}`;
      if (config.on_error === "deny") return invalidToken("the token could not be checked");
      return { result: "unavailable", error: new SwitchyardError({ code: "auth_unavailable", status: 503, source: "internal", retryable: true, message }) };
    }
    if (!answer.active) return invalidToken("the token is not active");
    const claims = answer.claims;
    if (typeof claims.exp === "number" && claims.exp * 1000 <= now()) return invalidToken("the token has expired");
    if (audiences !== undefined) {
      const named = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!named.some((a) => typeof a === "string" && audiences.has(a))) return invalidToken("the token's audience is not accepted");
    }
    const subject = typeof claims.sub === "string" ? claims.sub : typeof claims.username === "string" ? claims.username : undefined;
    return { claims, subject };
  });
}
