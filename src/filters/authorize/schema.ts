import { z } from "zod";
import { CidrSchema } from "../../config/primitives.ts";
import { ClaimsMatchSchema } from "../auth/claims-schema.ts";
import { NameSchema } from "../auth/schema.ts";

/** `*` matches any run of characters; everything else literally. Anchored. */
const GlobSchema = z.string().min(1);

/** Conditions of a rule: every one given must hold (a list holds when any of its entries does). */
export const RuleConditionsSchema = z.strictObject({
  /** true: an auth filter before this one accepted a credential; false: none did. */
  authenticated: z.boolean().optional(),
  /** The provider that accepted the credential is one of these. */
  providers: z.array(NameSchema).min(1).optional(),
  /** Claims of the token (jwt, introspection): name or dotted path → value, or a list of which one will do. */
  claims: ClaimsMatchSchema.optional(),
  /** The API key's name is one of these. */
  api_key_names: z.array(z.string().min(1)).min(1).optional(),
  /** The API key's tier is one of these. */
  api_key_tiers: z.array(z.string().min(1)).min(1).optional(),
  /** The verified client certificate (mTLS listeners); each list given must have a match. */
  client_cert: z
    .strictObject({
      /** Subject DN patterns, e.g. `CN=billing,*`. */
      subject: z.array(GlobSchema).min(1).optional(),
      /** URI SAN patterns, e.g. `spiffe://prod.example/ns/payments/*`. */
      uri: z.array(GlobSchema).min(1).optional(),
      /** DNS SAN patterns, e.g. `*.internal.example`. */
      san: z.array(GlobSchema).min(1).optional(),
      /** SHA-256 fingerprints (hex, colons and case ignored). */
      fingerprint: z.array(z.string().regex(/^[0-9A-Fa-f:]{64,95}$/, "must be a SHA-256 fingerprint in hex")).min(1).optional(),
    })
    .optional(),
  /** The client address is in one of these ranges. */
  client_ip: z.array(CidrSchema).min(1).optional(),
  /** The request method is one of these. */
  methods: z.array(z.string().regex(/^[A-Z]+$/, "must be an upper-case HTTP method")).min(1).optional(),
});
export type RuleConditions = z.infer<typeof RuleConditionsSchema>;

/** `{ allow: true, when: {...} }` or `{ deny: true, when: {...} }`; no `when` matches every request. */
export const RuleSchema = z
  .strictObject({
    allow: z.literal(true).optional(),
    deny: z.literal(true).optional(),
    when: RuleConditionsSchema.prefault({}),
  })
  .refine((r) => (r.allow === true) !== (r.deny === true), { message: "give exactly one of allow: true or deny: true" });
export type Rule = z.infer<typeof RuleSchema>;

/** The `authorize` filter: rules in order, the first that matches decides; none matching is a denial (403). */
export const AuthorizeFilterSchema = z.strictObject({
  type: z.literal("authorize"),
  rules: z.array(RuleSchema).min(1),
});
export type AuthorizeFilterConfig = z.infer<typeof AuthorizeFilterSchema>;
