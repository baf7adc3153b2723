/**
 * A composition route's config compiled at build time: each call with its dependencies, its
 * compiled templates and a route of its own (the cluster, the call's timeout and retry policy,
 * the parent route's header rules and upstream-request filters), ready for sub-requests.
 */
import { type ParentRoute, subrequestRoute } from "../proxy/subrequest.ts";
import type { Cluster } from "../upstream/cluster.ts";
import type { ComposeConfig } from "./schema.ts";
import { compileJson, compileText, type Expression, expressionsIn, expressionsInJson, type Filled, type Scope } from "./template.ts";
import type { CompiledRoute } from "../proxy/context.ts";

export interface ComposeCall {
  readonly name: string;
  readonly optional: boolean;
  /** Calls whose answers this one reads: it starts once they have settled. */
  readonly deps: readonly string[];
  readonly route: CompiledRoute;
  readonly method: string;
  readonly target: (scope: Scope) => Filled;
  readonly headers: readonly (readonly [string, (scope: Scope) => Filled])[];
  readonly body: ((scope: Scope) => unknown) | undefined;
  readonly maxBody: number;
}

export interface ComposePlan {
  /** In config order. */
  readonly calls: readonly ComposeCall[];
  readonly byName: ReadonlyMap<string, ComposeCall>;
  readonly template: (scope: Scope) => unknown;
  readonly status: number;
  readonly forwardHeaders: readonly string[];
  /** The named groups of the route's path regex, for `${params.…}`. */
  readonly params: (path: string) => Record<string, string> | undefined;
}

function callsIn(found: Expression[] | string): string[] {
  return typeof found === "string" ? [] : found.filter((e) => e.source === "calls").map((e) => e.name);
}

/**
 * The regex runs on the request's path as sent (percent-encoded); a parameter is its decoded value,
 * so that a call's path encodes it once (`Zo%C3%AB` → `Zoë` → `Zo%C3%AB`, not `Zo%25C3%25AB`).
 * A malformed escape leaves the text as it is.
 */
function decodedGroups(groups: Record<string, string> | undefined): Record<string, string> | undefined {
  if (groups === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(groups)) {
    if (value === undefined) continue; // a group that did not take part in the match
    try {
      out[name] = decodeURIComponent(value);
    } catch {
      out[name] = value;
    }
  }
  return out;
}

export function buildComposePlan(parent: ParentRoute, config: ComposeConfig, clusters: ReadonlyMap<string, Cluster>): ComposePlan {
  const calls = Object.entries(config.calls).map(([name, call]): ComposeCall => {
    const deps = new Set([
      ...callsIn(expressionsIn(call.path)),
      ...Object.values(call.headers ?? {}).flatMap((v) => callsIn(expressionsIn(v))),
      ...(call.body === undefined ? [] : callsIn(expressionsInJson(call.body))),
    ]);
    return {
      name,
      optional: call.optional,
      deps: [...deps],
      route: subrequestRoute(parent, clusters.get(call.cluster)!, { timeout: call.timeout, retry: call.retry, host: call.host }),
      method: call.method,
      target: compileText(call.path, encodeURIComponent),
      // RFC 9110 §5.5: no CR, LF, NUL or other controls (but tab) in a field value; an answer could
      // carry them. Nor anything beyond Latin-1, which a field value (a byte string) cannot hold.
      headers: Object.entries(call.headers ?? {}).map(([h, v]) => [h, compileText(v, (s) => s, (s) => !/[\0-\x08\x0a-\x1f\x7f]|[^\0-\xff]/.test(s))] as const),
      body: call.body === undefined ? undefined : compileJson(call.body),
      maxBody: call.max_body,
    };
  });
  const regex = parent.config.match.path?.regex;
  const re = regex === undefined ? undefined : new RegExp(regex);
  return {
    calls,
    byName: new Map(calls.map((c) => [c.name, c])),
    template: compileJson(config.template),
    status: config.status,
    forwardHeaders: config.forward_headers.map((h) => h.toLowerCase()),
    params: re === undefined ? () => undefined : (path) => decodedGroups(re.exec(path)?.groups),
  };
}

