import { z } from "zod";
import { SizeSchema, TokenSchema } from "../../config/primitives.ts";

/** A small signature WAF: SQL injection, XSS and path traversal patterns in the path, query and chosen headers. */
/** The signature groups (rules.ts has the signatures). */
export const RULE_GROUPS = ["sqli", "xss", "traversal"] as const;

export type RuleGroup = (typeof RULE_GROUPS)[number];

export const WafFilterSchema = z.strictObject({
  type: z.literal("waf"),
  /** `block`: answer 403 waf_blocked on a match; `detect`: forward, and log and count the match. Default block. */
  mode: z.enum(["block", "detect"]).default("block"),
  /** Rule groups to apply. Default all: sqli, xss, traversal. */
  rules: z.array(z.enum(RULE_GROUPS)).min(1).default([...RULE_GROUPS]),
  /** Request headers inspected besides the path and the query (names and values of every parameter). Default user-agent, referer, cookie. */
  headers: z.array(TokenSchema).default(["user-agent", "referer", "cookie"]),
  /** Rule ids (e.g. `xss-event-handler`) to leave out, for known false positives. */
  disable: z.array(z.string().regex(/^[a-z]+-[a-z0-9-]+$/, "must be a rule id such as sqli-union")).default([]),
  /**
   * Longest value inspected. A longer one is not searched but matches rule `oversized-value`
   * (padding must not hide an attack past the inspected part). Default 16KiB, which is more than
   * Bun lets a request head be, so only a lower setting makes it fire.
   */
  max_inspect: SizeSchema.prefault("16KiB"),
});

export type WafFilterConfig = z.infer<typeof WafFilterSchema>;
