/**
 * The authorization rule compiler: pure, no I/O. Rules become one function over the request
 * facts; every condition is compiled up front (CIDR sets, pattern regexes, claim matchers).
 */
import type { AuthIdentity } from "../../proxy/context.ts";
import { CidrSet } from "../../util/cidr.ts";
import { compileClaimsMatch } from "../auth/claims.ts";
import type { Rule, RuleConditions } from "./schema.ts";
import type { ClientIdentity } from "../../security/client-identity.ts";

/** What a rule may look at (ProxyContext has all of it). */
export interface AuthorizeFacts {
  readonly method: string;
  readonly clientIp: string;
  readonly auth?: AuthIdentity;
  readonly clientCert?: ClientIdentity;
}

export interface Decision {
  readonly allow: boolean;
  /** Index of the rule that decided; undefined when none matched (the default denial). */
  readonly rule: number | undefined;
}

type Condition = (facts: AuthorizeFacts) => boolean;

/** `*` matches any run of characters; the rest literally; anchored. */
export function globRegex(pattern: string): RegExp {
  return new RegExp(`^${pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
}

const anyMatches = (patterns: readonly RegExp[], values: readonly string[]) => values.some((v) => patterns.some((p) => p.test(v)));
const normalizeFingerprint = (f: string) => f.replace(/:/g, "").toLowerCase();

function compileConditions(when: RuleConditions): Condition {
  const checks: Condition[] = [];
  if (when.authenticated !== undefined) {
    const want = when.authenticated;
    checks.push((f) => (f.auth !== undefined) === want);
  }
  if (when.providers !== undefined) {
    const names = new Set(when.providers);
    checks.push((f) => f.auth !== undefined && names.has(f.auth.provider));
  }
  if (when.claims !== undefined) {
    const failed = compileClaimsMatch(when.claims);
    checks.push((f) => f.auth?.claims !== undefined && failed(f.auth.claims) === undefined);
  }
  if (when.api_key_names !== undefined) {
    const names = new Set(when.api_key_names);
    checks.push((f) => f.auth?.kind === "api_key" && f.auth.subject !== undefined && names.has(f.auth.subject));
  }
  if (when.api_key_tiers !== undefined) {
    const tiers = new Set(when.api_key_tiers);
    checks.push((f) => f.auth?.kind === "api_key" && f.auth.tier !== undefined && tiers.has(f.auth.tier));
  }
  const cert = when.client_cert;
  if (cert !== undefined) {
    const subject = cert.subject?.map(globRegex);
    const uri = cert.uri?.map(globRegex);
    const san = cert.san?.map(globRegex);
    const fingerprints = cert.fingerprint === undefined ? undefined : new Set(cert.fingerprint.map(normalizeFingerprint));
    checks.push((f) => {
      const c = f.clientCert;
      if (c === undefined) return false;
      if (subject !== undefined && !anyMatches(subject, [c.subject])) return false;
      if (uri !== undefined && !anyMatches(uri, c.uris)) return false;
      if (san !== undefined && !anyMatches(san, c.sans)) return false;
      return fingerprints === undefined || fingerprints.has(normalizeFingerprint(c.fingerprint256));
    });
  }
  if (when.client_ip !== undefined) {
    const ranges = new CidrSet(when.client_ip);
    checks.push((f) => ranges.has(f.clientIp));
  }
  if (when.methods !== undefined) {
    const methods = new Set(when.methods);
    checks.push((f) => methods.has(f.method));
  }
  return (facts) => checks.every((check) => check(facts));
}

/** The rules as one decision function: the first matching rule decides; none matching denies. */
export function compileRules(rules: readonly Rule[]): (facts: AuthorizeFacts) => Decision {
  const compiled = rules.map((r, i) => ({ allow: r.allow === true, rule: i, matches: compileConditions(r.when) }));
  return (facts) => {
    for (const r of compiled) if (r.matches(facts)) return { allow: r.allow, rule: r.rule };
    return { allow: false, rule: undefined };
  };
}
