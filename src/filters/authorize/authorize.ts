/**
 * The `authorize` filter: per-route allow/deny rules over the caller's identity (set by an `auth`
 * filter before it), client certificate, address and method. First match wins; no match is a
 * denial. A denial is 403 `forbidden` (RFC 9110 §15.5.4), naming the rule but nothing about why.
 */
import { metrics } from "../../observe/metrics.ts";
import type { ProxyContext, Filter } from "../../proxy/context.ts";
import { SwitchyardError } from "../../util/errors.ts";
import type { FilterFactory } from "../filter.ts";
import { compileRules } from "./rules.ts";
import type { AuthorizeFilterConfig } from "./schema.ts";

export const authorizeFilter: FilterFactory<AuthorizeFilterConfig> = (config, deps) => {
  const decide = compileRules(config.rules);
  const route = deps.routeName;
  const denied = config.rules.map((_, i) => forbidden(`denied by rule ${i}`));
  const unmatched = forbidden("no rule allows this request");
  return {
    name: "authorize",
    onRequest: function authorize(ctx: ProxyContext) {
      const decision = decide(ctx);
      metrics.authorizeDecisions.inc([route, decision.allow ? "allowed" : "denied"]);
      if (decision.allow) return undefined;
      return decision.rule === undefined ? unmatched : denied[decision.rule];
    },
  } satisfies Filter;
};

function forbidden(message: string): SwitchyardError {
  return new SwitchyardError({ code: "forbidden", status: 403, source: "client", message });
}
