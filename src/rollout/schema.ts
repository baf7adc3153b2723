/**
 * A route's progressive rollout (`routes[].rollout`): traffic moves from `stable` to `canary` in
 * steps, each step passed or failed by an analysis of both clusters' outcomes on the route
 * (src/rollout/). Leaf: zod, primitives and other schemas only.
 */
import { z } from "zod";
import { DurationSchema, PositiveDurationSchema, TokenSchema } from "../config/primitives.ts";
import { PercentSchema } from "../slo/schema.ts";

const StepSchema = PercentSchema.refine((f) => f > 0, "a step sends some traffic to the canary: above 0%");

export const AnalysisSchema = z
  .strictObject({
    /** The canary's error rate over the step (5xx answers and the proxy's failures: timeouts, resets, no endpoint). */
    error_rate: z
      .strictObject({
        /** Absolute limit, e.g. 1%. */
        max: PercentSchema.optional(),
        /** Limit above the stable cluster's rate over the same step, in percentage points (0.5% allows 0.7% against 0.2%). */
        max_over_stable: PercentSchema.optional(),
      })
      .optional(),
    /** The canary's 99th percentile of request duration (until the response body ended) over the step. */
    p99: z
      .strictObject({
        /** Absolute limit, e.g. 500ms. */
        max: PositiveDurationSchema.optional(),
        /** Limit above the stable cluster's p99 over the same step, e.g. 100ms. */
        max_over_stable: DurationSchema.optional(),
        /** Limit as a multiple of the stable cluster's p99, e.g. 1.5. */
        max_ratio: z.number().min(1).optional(),
      })
      .optional(),
    /**
     * Use the route's `slo`: the canary may burn its error budget at most `max_burn_rate` times as
     * fast as the SLO allows (1 = exactly at the objective), for availability and latency alike.
     */
    slo: z.strictObject({ max_burn_rate: z.number().positive() }).optional(),
  })
  .refine((a) => [a.error_rate?.max, a.error_rate?.max_over_stable, a.p99?.max, a.p99?.max_over_stable, a.p99?.max_ratio, a.slo].some((v) => v !== undefined), {
    message: "give at least one check (error_rate, p99 or slo)",
  });

export const StickySchema = z
  .strictObject({
    /**
     * The proxy sets this cookie on a client's first answer during the rollout and keeps the
     * client on that side while the rollout lasts. Default, when neither header nor claim is
     * given: `sy-rollout-<route name>`.
     */
    cookie: TokenSchema.optional(),
    /** Side by a hash of this request header (e.g. x-user-id); requests without it are not sticky. */
    header: TokenSchema.optional(),
    /** Side by a hash of this claim of the caller's verified token (set by the route's auth filter), e.g. sub. */
    claim: z.string().min(1).optional(),
    /** Max-Age of the cookie. Default 168h (a week). */
    cookie_max_age: PositiveDurationSchema.prefault("168h"),
  })
  .refine((s) => [s.cookie, s.header, s.claim].filter((v) => v !== undefined).length <= 1, { message: "give one of cookie, header or claim" });

export const RolloutSchema = z
  .strictObject({
    /** The cluster in production now: gets what the canary does not, and everything after a rollback. */
    stable: z.string().min(1),
    /** The new version: gets each step's share, and everything once promoted. */
    canary: z.string().min(1),
    /** The canary's share at each step, increasing. Default 1%, 5%, 25%, 50%, 100%. A passed last step promotes. */
    steps: z.array(StepSchema).min(1).prefault(["1%", "5%", "25%", "50%", "100%"]),
    /** How long each step lasts at least. Default 5m. */
    step_duration: PositiveDurationSchema.prefault("5m"),
    /**
     * Canary requests a step needs before it is judged: a step with fewer is extended until it
     * has them (it never passes on too few), and no check fails before. Default 100.
     */
    min_requests: z.number().int().min(1).default(100),
    /** What passes or fails a step. Default: the canary's error rate at most 1%. */
    analysis: AnalysisSchema.prefault({ error_rate: { max: "1%" } }),
    /** Keeps each client on one side while the rollout lasts; `false`: every request is weighted anew. */
    sticky: z.union([z.literal(false), StickySchema]).prefault({}),
  })
  .superRefine((r, ctx) => {
    if (r.stable === r.canary) ctx.addIssue({ code: "custom", path: ["canary"], message: "must be another cluster than stable" });
    r.steps.forEach((s, i) => {
      if (i > 0 && s <= r.steps[i - 1]!) ctx.addIssue({ code: "custom", path: ["steps", i], message: "steps must increase" });
    });
  });

export type Rollout = z.infer<typeof RolloutSchema>;
export type Analysis = z.infer<typeof AnalysisSchema>;

/** What a route with a rollout must also satisfy (called from the route schema's refinement). */
export function checkRolloutRoute(
  route: { rollout?: Rollout; slo?: unknown; override?: { cluster: string } },
  issue: (path: (string | number)[], message: string) => void,
): void {
  const r = route.rollout;
  if (r === undefined) return;
  if (route.override !== undefined && route.override.cluster !== r.stable && route.override.cluster !== r.canary) {
    issue(["override", "cluster"], `on a rollout route the override forces a side: "${r.stable}" or "${r.canary}"`);
  }
  if (r.analysis.slo !== undefined && route.slo === undefined) issue(["rollout", "analysis", "slo"], "needs the route's slo");
}
