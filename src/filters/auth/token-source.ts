/**
 * Where a credential travels (RFC 6750 §2: the Authorization header by default; a custom header,
 * a cookie or a query parameter when configured), how to read it, and how to take it off the
 * request before the upstream sees it.
 */
import type { CredentialCarrier, CredentialStrip } from "./provider.ts";
import type { TokenSource } from "./token-source-schema.ts";
import { cookieValue } from "../../util/cookies.ts";

/**
 * A credential sent more than once where only one fits (`?access_token=a&access_token=b`): the
 * proxy would verify one copy and the upstream might read the other (parameter pollution), so
 * such a request is refused.
 */
export const REPEATED: unique symbol = Symbol("credential given more than once");

/** A compiled source: read the credential, strip it from the upstream request. */
export interface CompiledSource {
  /** The credential, "" when the carrier is there but empty (e.g. `Bearer ` alone), undefined when absent, REPEATED when given twice. */
  read(request: CredentialCarrier): string | undefined | typeof REPEATED;
  /** How to remove the credential from the upstream request. */
  readonly strip: CredentialStrip;
  /** For messages: where the credential is expected. */
  readonly describe: string;
}

export function compileSource(source: TokenSource): CompiledSource {
  if (source.header !== undefined) {
    const name = source.header.toLowerCase();
    const scheme = source.scheme?.toLowerCase();
    return {
      read(ctx) {
        const value = ctx.headers.get(name);
        if (value === null) return undefined;
        if (scheme === undefined) return value.trim();
        const space = value.indexOf(" ");
        // Another scheme (e.g. Basic) is not ours to judge: absent, so a later provider may take it.
        if ((space === -1 ? value : value.slice(0, space)).toLowerCase() !== scheme) return undefined;
        return space === -1 ? "" : value.slice(space + 1).trim();
      },
      strip: { headers: (headers) => headers.delete(name) },
      describe: scheme === undefined ? `the ${name} header` : `${name}: ${source.scheme} <token>`,
    };
  }
  if (source.cookie !== undefined) {
    const cookie = source.cookie;
    return {
      read: (ctx) => cookieValue(ctx.headers.get("cookie"), cookie),
      strip: {
        headers(headers) {
          const header = headers.get("cookie");
          if (header === null) return;
          const kept = header.split(";").map((p) => p.trim()).filter((p) => p !== "" && p.split("=", 1)[0]!.trim() !== cookie);
          if (kept.length === 0) headers.delete("cookie");
          else headers.set("cookie", kept.join("; "));
        },
      },
      describe: `the ${cookie} cookie`,
    };
  }
  const param = source.query!;
  return {
    read(ctx) {
      if (ctx.query === "") return undefined;
      const values = new URLSearchParams(ctx.query).getAll(param);
      return values.length > 1 ? REPEATED : values[0];
    },
    strip: { query: param },
    describe: `the ${param} query parameter`,
  };
}

/** Header and query names that carry credentials for `sources`: the access log redacts them. */
export function secretNames(sources: readonly TokenSource[]): { headers: string[]; query: string[] } {
  const headers = new Set<string>();
  const query = new Set<string>();
  for (const s of sources) {
    if (s.header !== undefined) headers.add(s.header.toLowerCase());
    if (s.query !== undefined) query.add(s.query.toLowerCase());
  }
  return { headers: [...headers], query: [...query] };
}
