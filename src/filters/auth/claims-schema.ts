/** Required claims (`required_claims`, the authorize filter's `claims`): name or dotted path → value(s). Matched by claims.ts. */
import { z } from "zod";

const ScalarSchema = z.union([z.string(), z.number(), z.boolean()]);

/** One required value, or a list of which any one will do. */
export const ClaimExpectationSchema = z.union([ScalarSchema, z.array(ScalarSchema).min(1)]);

export type ClaimExpectation = z.infer<typeof ClaimExpectationSchema>;

/** Claim name (or dotted path) → expected value(s). Every entry must hold. */
export const ClaimsMatchSchema = z.record(z.string().min(1), ClaimExpectationSchema);

export type ClaimsMatch = z.infer<typeof ClaimsMatchSchema>;
