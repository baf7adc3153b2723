/**
 * CORS (WHATWG Fetch §3.2): answers preflights here, without the upstream, and adds the
 * Access-Control-* headers to every response for an allowed origin. CORS is not access control —
 * a request from an origin that is not allowed is still forwarded; the browser hides the answer.
 */
import type { ProxyContext, Filter } from "../../proxy/context.ts";
import { SwitchyardError } from "../../util/errors.ts";
import type { FilterFactory } from "../filter.ts";
import type { CorsFilterConfig } from "./schema.ts";

export const corsFilter: FilterFactory<CorsFilterConfig> = (config) => {
  const exact = new Set(config.allow_origins);
  const anyOrigin = exact.has("*");
  // Whole-origin match whatever the pattern's own anchors: `https://[a-z]+\.example\.com` written
  // without `$` must not allow `https://a.example.com.evil.io` (with credentials, a data leak).
  const patterns = config.allow_origin_regex.map((r) => new RegExp(`^(?:${r})$`));
  const methods = new Set(config.allow_methods);
  const anyHeader = config.allow_headers.includes("*");
  const headers = new Set(config.allow_headers.map((h) => h.toLowerCase()));
  const allowMethods = config.allow_methods.join(", ");
  const exposeHeaders = config.expose_headers.join(", ");
  const maxAge = String(Math.floor(config.max_age / 1000));

  /** The Access-Control-Allow-Origin value for this origin, or undefined when it is not allowed. */
  const allowOrigin = (origin: string | null): string | undefined => {
    if (origin === null) return undefined;
    // With credentials the origin itself must be named; without, `*` is enough for a wildcard.
    if (exact.has(origin) || patterns.some((p) => p.test(origin))) return origin;
    return anyOrigin ? "*" : undefined;
  };

  const rejected = (message: string) => new SwitchyardError({ code: "cors_rejected", status: 403, source: "client", message });

  return {
    name: "cors",
    onRequest: function corsPreflight(ctx: ProxyContext) {
      const requestedMethod = ctx.method === "OPTIONS" ? ctx.headers.get("access-control-request-method") : null;
      if (requestedMethod === null) return undefined; // not a preflight
      const origin = allowOrigin(ctx.headers.get("origin"));
      if (origin === undefined) return rejected(`origin ${JSON.stringify(ctx.headers.get("origin") ?? "")} is not allowed`);
      if (!methods.has(requestedMethod)) return rejected(`method ${requestedMethod} is not allowed (allowed: ${allowMethods})`);
      const requested = (ctx.headers.get("access-control-request-headers") ?? "").split(",").map((h) => h.trim().toLowerCase()).filter((h) => h !== "");
      const refused = anyHeader ? undefined : requested.find((h) => !headers.has(h));
      if (refused !== undefined) return rejected(`header ${refused} is not allowed`);
      const answer = new Headers({
        "access-control-allow-origin": origin,
        "access-control-allow-methods": allowMethods,
        "access-control-max-age": maxAge,
        vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
      });
      if (requested.length > 0) answer.set("access-control-allow-headers", requested.join(", "));
      if (config.allow_credentials) answer.set("access-control-allow-credentials", "true");
      return new Response(null, { status: 204, headers: answer });
    },
    onResponseHeaders: function corsHeaders(ctx: ProxyContext, out: Headers) {
      const origin = allowOrigin(ctx.headers.get("origin"));
      if (origin === undefined || out.has("access-control-allow-methods")) return; // not CORS, or our preflight answer
      out.set("access-control-allow-origin", origin);
      if (config.allow_credentials) out.set("access-control-allow-credentials", "true");
      if (exposeHeaders !== "") out.set("access-control-expose-headers", exposeHeaders);
      if (origin !== "*") out.append("vary", "Origin");
    },
  } satisfies Filter;
};
