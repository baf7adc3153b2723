import { z } from "zod";
import { TokenSchema } from "../../config/primitives.ts";

/** What a consistent-hash balancer hashes: exactly one request attribute. A request without it gets a random endpoint. */
export const HashOnSchema = z
  .strictObject({
    header: TokenSchema.optional(),
    cookie: TokenSchema.optional(),
    query: TokenSchema.optional(),
    client_ip: z.literal(true).optional(),
    path: z.literal(true).optional(),
  })
  .refine((h) => Object.values(h).filter((v) => v !== undefined).length === 1, {
    message: "give exactly one of header, cookie, query, client_ip or path",
  });

export const BalancerSchema = z.discriminatedUnion("type", [
  /** Each endpoint in turn, ignoring weights. */
  z.strictObject({ type: z.literal("round_robin") }),
  /** Smooth weighted round robin (nginx's): weights 1:3 give a, b, b, b interleaved, not in bursts. */
  z.strictObject({ type: z.literal("weighted_round_robin") }),
  /** Power of `choice_count` random choices, the one with fewest in-flight requests per unit of weight wins (Envoy's least_request). */
  z.strictObject({ type: z.literal("least_request"), choice_count: z.number().int().min(2).max(10).default(2) }),
  /** Weighted random. */
  z.strictObject({ type: z.literal("random") }),
  /** Consistent hashing on a ring (Ketama-style): when an endpoint leaves, only its keys move. */
  z.strictObject({
    type: z.literal("ring_hash"),
    hash_on: HashOnSchema,
    /**
     * Ring points per unit of weight (Ketama's 160 by default). Fixed per endpoint, so adding or
     * removing an endpoint moves no point of the others and only its own keys move.
     */
    points_per_weight: z.number().int().min(1).max(10_000).default(160),
  }),
  /** Maglev consistent hashing: a fixed-size lookup table, O(1) picks, near-even spread. */
  z.strictObject({
    type: z.literal("maglev"),
    hash_on: HashOnSchema,
    /** Lookup table size, a prime. Default 65537. */
    table_size: z.number().int().min(251).max(5_000_011).default(65_537).refine(isPrime, "must be a prime number"),
  }),
]);

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

export type BalancerConfig = z.infer<typeof BalancerSchema>;
export type HashOn = z.infer<typeof HashOnSchema>;
