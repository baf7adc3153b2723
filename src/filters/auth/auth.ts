/**
 * The `auth` filter: tries the route's named providers in order; the first that accepts a
 * credential sets ctx.auth. When none accepts: a provider that could not check (503) wins over a
 * refused credential (401 invalid_token / invalid_api_key, or an ext_authz service's own denial),
 * which wins over no credential at all (401, unless `optional`). 401s carry a WWW-Authenticate
 * challenge per scheme (RFC 9110 §11.6.1, RFC 6750 §3).
 */
import type { ProxyContext, Filter } from "../../proxy/context.ts";
import { SwitchyardError } from "../../util/errors.ts";
import { metrics } from "../../observe/metrics.ts";
import type { FilterFactory, RuntimeDeps } from "../filter.ts";
import { type AuthProvider, challengeText, type Outcome, type UpstreamHeader } from "./provider.ts";
import type { AuthFilterConfig, AuthProviderConfig } from "./schema.ts";
import { secretNames } from "./token-source.ts";
import type { TokenSource } from "./token-source-schema.ts";

/** A built provider and the settings it was built from (to keep it, with its caches, across a reload). */
interface Built {
  readonly settings: string;
  readonly provider: AuthProvider;
}

/** Each kind is loaded when a provider of it is configured (JWT brings jose): start-up loads only what the config uses. */
function buildProvider(name: string, config: AuthProviderConfig): AuthProvider {
  switch (config.type) {
    case "jwt": return (require("./jwt.ts") as typeof import("./jwt.ts")).jwtProvider(name, config);
    case "introspection": return (require("./introspection.ts") as typeof import("./introspection.ts")).introspectionProvider(name, config);
    case "ext_authz": return (require("./ext-authz.ts") as typeof import("./ext-authz.ts")).extAuthzProvider(name, config);
    case "api_key": return (require("./api-key.ts") as typeof import("./api-key.ts")).apiKeyProvider(name, config);
  }
}

/** Providers that read files are rebuilt on every reload (the file may have changed); the others keep their caches when unchanged. */
const readsFiles = (c: AuthProviderConfig) => (c.type === "api_key" && c.keys_file !== undefined) || (c.type === "jwt" && (c.keys ?? []).some((k) => k.file !== undefined));

/** The provider `name`, built once per runtime and shared by the routes that name it. */
export function providerFor(name: string, deps: RuntimeDeps): AuthProvider {
  const config = deps.config.auth[name];
  if (config === undefined) throw new Error(`unknown auth provider "${name}"`); // the config's own check reports it first
  return deps.once<Built>(`auth:${name}`, (previous) => {
    const settings = JSON.stringify(config);
    if (previous !== undefined && previous.settings === settings && !readsFiles(config)) return previous;
    return { settings, provider: buildProvider(name, config) };
  }).provider;
}

/** Headers and query parameters that carry credentials for the configured providers: the access log redacts them. */
export function credentialLocations(providers: Readonly<Record<string, AuthProviderConfig>>): { headers: string[]; query: string[] } {
  const sources: TokenSource[] = [];
  for (const p of Object.values(providers)) {
    if (p.type === "jwt" || p.type === "introspection") sources.push(p.token);
    else if (p.type === "api_key") sources.push({ header: p.header }, ...(p.query === undefined ? [] : [{ query: p.query }]));
    else sources.push(...p.headers.map((header) => ({ header })));
  }
  return secretNames(sources);
}

export const authFilter: FilterFactory<AuthFilterConfig> = (config, deps) => {
  const providers = config.providers.map((name) => providerFor(name, deps));
  const route = deps.routeName;
  const owned = [...new Set(providers.flatMap((p) => p.ownedHeaders))];
  const schemes = [...new Set(providers.map((p) => p.challenge).filter((c) => c !== undefined))];
  const realm = `realm="${config.realm}"`;
  /** WWW-Authenticate: one challenge per scheme; the refusing one says why (RFC 6750 §3.1: not when no credential was sent). */
  const challenges = (refused?: { scheme: string | undefined; code: string; description: string }) =>
    schemes
      .map((scheme) => (scheme === refused?.scheme ? `${scheme} ${realm}, error="${refused!.code}", error_description="${challengeText(refused!.description)}"` : `${scheme} ${realm}`))
      .join(", ");
  const expected = providers.map((p) => p.expects).filter((e) => e !== undefined);
  const missing = new SwitchyardError({
    code: "unauthenticated", status: 401, source: "client",
    message: `this route needs a credential${expected.length > 0 ? ` (${expected.join(", or ")})` : ""}`,
    headers: schemes.length > 0 ? { "www-authenticate": challenges() } : undefined,
  });
  /** What the accepting provider does to the upstream request, by request. */
  const accepted = new WeakMap<ProxyContext, { provider: AuthProvider; upstream: readonly UpstreamHeader[] }>();

  return {
    name: "auth",
    onRequest: async function authenticate(ctx: ProxyContext) {
      let refused: { provider: AuthProvider; outcome: Outcome & { result: "rejected" | "denied" } } | undefined;
      let unavailable: { provider: AuthProvider; error: SwitchyardError } | undefined;
      for (const provider of providers) {
        const outcome = await provider.authenticate(ctx);
        if (outcome.result === "absent") continue;
        if (outcome.result === "accepted") {
          ctx.auth = outcome.identity;
          metrics.authDecisions.inc([route, provider.name, "accepted"]);
          if (provider.strip?.query !== undefined) (ctx.upstreamQueryRemove ??= []).push(provider.strip.query);
          if (outcome.upstream.length > 0 || provider.strip?.headers !== undefined) accepted.set(ctx, { provider, upstream: outcome.upstream });
          return undefined;
        }
        if (outcome.result === "unavailable") unavailable ??= { provider, error: outcome.error };
        else refused ??= { provider, outcome };
      }
      if (unavailable !== undefined) {
        metrics.authDecisions.inc([route, unavailable.provider.name, "unavailable"]);
        return unavailable.error;
      }
      if (refused !== undefined) {
        const { provider, outcome } = refused;
        metrics.authDecisions.inc([route, provider.name, outcome.result]);
        if (outcome.result === "denied") return outcome.response;
        return new SwitchyardError({
          code: outcome.code, status: 401, source: "client", message: outcome.description,
          headers: { "www-authenticate": challenges({ scheme: provider.challenge, code: outcome.code, description: outcome.description }) },
        });
      }
      metrics.authDecisions.inc([route, "", "missing"]);
      return config.optional ? undefined : missing;
    },
    // As onRequest does once a provider accepts: the first provider with a credential on the
    // request is taken to accept it (explain cannot verify credentials).
    explainQueryRemove(request) {
      const query = providers.find((p) => p.presented(request))?.strip?.query;
      return query === undefined ? [] : [query];
    },
    onUpstreamRequest: function authUpstreamHeaders(ctx: ProxyContext, headers: Headers) {
      // Headers the providers vouch for are never the client's to send.
      for (const name of owned) headers.delete(name);
      const state = accepted.get(ctx);
      if (state === undefined) return;
      state.provider.strip?.headers?.(headers);
      for (const [name, value] of state.upstream) headers.set(name, value);
    },
  } satisfies Filter;
};
