/**
 * The WAF's signatures: a deliberately small set, written for high-signal attack shapes rather than
 * completeness (a full rule set such as OWASP CRS belongs in a dedicated WAF). Each runs on a value
 * that has been percent-decoded (twice, for double encoding), `+` read as space, and lower-cased.
 */
import type { RuleGroup } from "./schema.ts";

export interface WafRule {
  readonly id: string;
  readonly group: RuleGroup;
  readonly pattern: RegExp;
}

export const RULES: readonly WafRule[] = [
  { id: "sqli-union", group: "sqli", pattern: /\bunion\b[\s\S]{0,40}?\bselect\b/ },
  { id: "sqli-tautology", group: "sqli", pattern: /['"`]\s*(?:or|and|\|\||&&)\s*['"`]?\s*(\w+)\s*['"`]?\s*(?:=|like)\s*['"`]?\s*\1\b/ },
  { id: "sqli-comment", group: "sqli", pattern: /['"`]\s*(?:;|\))?\s*(?:--|#|\/\*)/ },
  { id: "sqli-stacked", group: "sqli", pattern: /;\s*(?:drop|delete|insert|update|alter|create|truncate|exec|shutdown)\s+\w/ },
  { id: "sqli-time", group: "sqli", pattern: /\b(?:sleep|pg_sleep|benchmark)\s*\(\s*\d|\bwaitfor\s+delay\s+'/ },
  { id: "sqli-schema", group: "sqli", pattern: /\binformation_schema\b|\bxp_cmdshell\b|\bload_file\s*\(|\binto\s+(?:out|dump)file\b/ },
  { id: "xss-script", group: "xss", pattern: /<\s*script\b|<\s*\/\s*script\s*>/ },
  { id: "xss-event-handler", group: "xss", pattern: /<[a-z][^>]*\bon[a-z]{3,20}\s*=/ },
  { id: "xss-url-scheme", group: "xss", pattern: /\b(?:javascript|vbscript)\s*:|\bdata\s*:\s*text\/html/ },
  { id: "xss-tags", group: "xss", pattern: /<\s*(?:iframe|object|embed|svg|math|base|meta|link)\b/ },
  { id: "traversal-dots", group: "traversal", pattern: /(?:^|[\/\\])\.\.(?:[\/\\]|$)/ },
  { id: "traversal-files", group: "traversal", pattern: /\/etc\/(?:passwd|shadow|hosts)\b|\bc:[\/\\]windows\b|\/proc\/self\/|\bboot\.ini\b|\.(?:htaccess|htpasswd)\b|\/\.git\/|\/\.env\b/ },
];

/** Lower-cased, `+` as space, percent-decoded up to twice (double encoding); malformed escapes stay as they are. */
export function normalizeForInspection(value: string, max: number): string {
  let v = value.length > max ? value.slice(0, max) : value;
  v = v.replaceAll("+", " ");
  for (let i = 0; i < 2 && v.includes("%"); i++) v = decodeLenient(v);
  return v.replaceAll("\0", "").toLowerCase();
}

function decodeLenient(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  }
}
