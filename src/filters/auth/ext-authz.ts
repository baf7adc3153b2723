/**
 * The ext_authz provider (Envoy's external authorization over HTTP; Traefik's ForwardAuth): an
 * authorization service decides per request. It gets a GET with the selected client headers and
 * X-Forwarded-Method, -Uri, -For, -Host, -Proto; a 2xx allows (chosen answer headers go on to the
 * upstream), a 3xx/4xx denies with its own status, headers and body, and a failure (no answer,
 * timeout, 5xx, oversize answer) follows failure_mode. Decisions may be cached briefly.
 */
import type { ProxyContext } from "../../proxy/context.ts";
import { SwitchyardError } from "../../util/errors.ts";
import { callBackend } from "./backend.ts";
import type { AuthProvider, Outcome, UpstreamHeader } from "./provider.ts";
import type { ExtAuthzProviderConfig } from "./schema.ts";
import { TtlCache } from "./ttl-cache.ts";

type Decision =
  | { readonly allow: true; readonly upstream: readonly UpstreamHeader[]; readonly subject: string | undefined }
  | { readonly allow: false; readonly status: number; readonly headers: readonly UpstreamHeader[]; readonly body: Uint8Array }
  | { readonly failed: string };

export function extAuthzProvider(name: string, config: ExtAuthzProviderConfig, now: () => number = Date.now): AuthProvider {
  const sent = config.headers.map((h) => h.toLowerCase());
  const toUpstream = config.upstream_headers.map((h) => h.toLowerCase());
  const toClient = config.client_headers.map((h) => h.toLowerCase());
  const cache = config.cache.ttl > 0 ? new TtlCache<Decision>(config.cache.max_entries, now) : undefined;
  const keyParts = new Set(config.cache.key);
  const ttlOf = (d: Decision) => ("failed" in d ? 0 : config.cache.ttl);
  const pick = (headers: Headers, names: readonly string[]): UpstreamHeader[] => {
    const out: UpstreamHeader[] = [];
    for (const n of names) {
      const v = headers.get(n);
      if (v !== null) out.push([n, v]);
    }
    return out;
  };

  async function ask(ctx: ProxyContext, selected: readonly UpstreamHeader[]): Promise<Decision> {
    const headers: Record<string, string> = Object.fromEntries(selected);
    headers["x-forwarded-method"] = ctx.method;
    headers["x-forwarded-uri"] = ctx.query === "" ? ctx.path : `${ctx.path}?${ctx.query}`;
    headers["x-forwarded-for"] = ctx.clientIp;
    headers["x-forwarded-host"] = ctx.host;
    headers["x-forwarded-proto"] = ctx.listener.proto;
    headers["x-request-id"] = ctx.requestId;
    const answer = await callBackend(name, config.url, { headers, timeout: config.timeout, maxBody: config.max_body });
    if ("error" in answer) return { failed: answer.error };
    if (answer.status >= 500) return { failed: `answered ${answer.status}` };
    if (answer.status >= 200 && answer.status < 300) {
      const subject = config.subject_header === undefined ? undefined : (answer.headers.get(config.subject_header) ?? undefined);
      return { allow: true, upstream: pick(answer.headers, toUpstream), subject };
    }
    return { allow: false, status: answer.status, headers: pick(answer.headers, toClient), body: answer.body };
  }

  /**
   * The cache key: the selected headers, the host and scheme, and the configured request facts,
   * hashed (it holds credentials). Host and scheme always: the service is told them
   * (X-Forwarded-Host/-Proto), so an allow for one virtual host must not answer for another.
   */
  const keyOf = (ctx: ProxyContext, selected: readonly UpstreamHeader[]): string => {
    const hasher = new Bun.CryptoHasher("sha256");
    for (const [n, v] of selected) hasher.update(`${n}:${v}\n`);
    hasher.update(`\0h${ctx.listener.proto}://${ctx.host}`);
    if (keyParts.has("method")) hasher.update(`\0m${ctx.method}`);
    if (keyParts.has("path")) hasher.update(`\0p${ctx.path}?${ctx.query}`);
    if (keyParts.has("client_ip")) hasher.update(`\0i${ctx.clientIp}`);
    return hasher.digest("hex");
  };

  return {
    name,
    challenge: undefined,
    expects: undefined,
    ownedHeaders: toUpstream,
    strip: undefined,
    // The service decides every request, with or without a credential.
    presented: () => true,
    async authenticate(ctx): Promise<Outcome> {
      const selected = pick(ctx.headers, sent);
      const decision = cache === undefined ? await ask(ctx, selected) : await cache.load(keyOf(ctx, selected), () => ask(ctx, selected), ttlOf);
      if ("failed" in decision) {
        if (config.failure_mode === "allow") return { result: "accepted", identity: { provider: name, kind: "ext_authz" }, upstream: [] };
        const message = `the authorization service failed: ${decision.failed}`;
        return { result: "unavailable", error: new SwitchyardError({ code: "ext_authz_failed", status: config.status_on_error, source: "internal", message }) };
      }
      if (decision.allow) return { result: "accepted", identity: { provider: name, kind: "ext_authz", subject: decision.subject }, upstream: decision.upstream };
      const headers = new Headers(decision.headers as [string, string][]);
      headers.set("cache-control", "no-store");
      return { result: "denied", response: new Response(decision.body.byteLength > 0 ? decision.body : null, { status: decision.status, headers }) };
    },
  };
}
