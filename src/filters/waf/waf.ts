/**
 * The WAF filter: signatures (rules.ts) over the normalized path, every query parameter (name and
 * value) and chosen headers. `block` answers 403; `detect` only records. Matches (rule id and
 * where, never the value: it may hold a secret) go to the access log and to metrics.
 */
import { metrics } from "../../observe/metrics.ts";
import type { ProxyContext, Filter } from "../../proxy/context.ts";
import { SwitchyardError } from "../../util/errors.ts";
import type { FilterFactory } from "../filter.ts";
import { normalizeForInspection, RULES, type WafRule } from "./rules.ts";
import type { WafFilterConfig } from "./schema.ts";

export interface WafMatch {
  rule: string;
  /** `path`, `query:<name>` or `header:<name>`. */
  where: string;
}

/** Characters without which none of the rules can match: a clean value is skipped at once. */
const SUSPECT = /[%'"`<>;()\\/.:+#*=|&-]|union|select|sleep|benchmark|waitfor|information_schema|xp_cmdshell|into|script|javascript|vbscript|data|etc|proc|windows|boot/i;

export const wafFilter: FilterFactory<WafFilterConfig> = (config, deps) => {
  const disabled = new Set(config.disable);
  const refuseOversized = !disabled.has("oversized-value");
  const rules = RULES.filter((r) => config.rules.includes(r.group) && !disabled.has(r.id));
  const headers = config.headers.map((h) => h.toLowerCase());
  const route = deps.routeName;

  const inspect = (raw: string, where: string, out: WafMatch[], rulesFor: readonly WafRule[] = rules) => {
    if (raw.length > config.max_inspect) {
      if (refuseOversized) out.push({ rule: "oversized-value", where });
      return;
    }
    if (raw === "" || !SUSPECT.test(raw)) return;
    const value = normalizeForInspection(raw, config.max_inspect);
    for (const r of rulesFor) if (r.pattern.test(value)) out.push({ rule: r.id, where });
  };
  // The path's own slashes and dots are its structure: only traversal-files and non-traversal rules apply there.
  const pathRules = rules.filter((r) => r.id !== "traversal-dots");

  return {
    name: "waf",
    onRequest: function waf(ctx: ProxyContext) {
      const matches: WafMatch[] = [];
      inspect(ctx.path, "path", matches, pathRules);
      if (ctx.query !== "") {
        for (const pair of ctx.query.split("&")) {
          const eq = pair.indexOf("=");
          const name = eq === -1 ? pair : pair.slice(0, eq);
          const shownName = normalizeForInspection(name, 64).replace(/[^a-z0-9_.\-\[\]]/g, "_");
          inspect(name, `query:${shownName}`, matches);
          if (eq !== -1) inspect(pair.slice(eq + 1), `query:${shownName}`, matches);
        }
      }
      for (const h of headers) {
        const v = ctx.headers.get(h);
        if (v !== null) inspect(v, `header:${h}`, matches);
      }
      if (matches.length === 0) return undefined;
      ctx.waf = { mode: config.mode, matches };
      for (const m of matches) metrics.wafMatches.inc([route, m.rule, config.mode]);
      if (config.mode === "detect") return undefined;
      const first = matches[0]!;
      return new SwitchyardError({ code: "waf_blocked", status: 403, source: "client", message: `the request was blocked by rule ${first.rule} (${first.where})` });
    },
  } satisfies Filter;
};
