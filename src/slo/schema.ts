/**
 * A route's service level objectives (`routes[].slo`): availability and latency targets over a
 * window, from which the error budget and its burn rates are derived (src/slo/). Leaf: zod and
 * primitives only.
 */
import { z } from "zod";
import { DurationSchema } from "../config/primitives.ts";

/** `99.9%` or `99.9` (a number is a percentage too); parsed to a fraction (0.999). */
export const PercentSchema = z
  .union([z.number(), z.string().regex(/^\d+(\.\d+)?%$/, "must be a percentage such as 99.9%")])
  .describe("A percentage: `99.9%` (or the number 99.9)")
  // Rounded: 99.9 / 100 is 0.9990000000000001 in binary floating point.
  .transform((v) => Number(((typeof v === "number" ? v : Number(v.slice(0, -1))) / 100).toPrecision(12)))
  .refine((f) => f >= 0 && f <= 1, "must be from 0% to 100%");

/** An objective: strictly between 0% and 100% (100% leaves no budget to burn). */
const TargetSchema = PercentSchema.refine((f) => f > 0 && f < 1, "must be above 0% and below 100% (100% leaves no error budget)");

/** `30d`, `7d`, `12h`: the SLO window, at whole hours (the budget is kept per hour). Parsed to milliseconds. */
export const SloWindowSchema = z
  .string()
  .regex(/^\d+(d|h)$/, "must be whole days or hours, e.g. 30d, 7d, 12h")
  .describe("An SLO window in whole days or hours: `30d`, `28d`, `12h`")
  .transform((text) => Number(text.slice(0, -1)) * (text.endsWith("d") ? 86_400_000 : 3_600_000))
  .refine((ms) => ms >= 3_600_000 && ms <= 90 * 86_400_000, "must be from 1h to 90d");

export const SloSchema = z
  .strictObject({
    /**
     * Share of requests that must succeed: not a 5xx answer and not a failure of the proxy's
     * (timeouts, resets, no endpoint…). Client aborts and WebSocket sessions are not counted.
     */
    availability: TargetSchema.optional(),
    /** Share of requests that must end (response body included) within `threshold`. */
    latency: z.strictObject({ threshold: DurationSchema.refine((ms) => ms > 0, "must be more than 0"), target: TargetSchema }).optional(),
    /** The window the budget is counted over. Default 30d. */
    window: SloWindowSchema.prefault("30d"),
  })
  .refine((s) => s.availability !== undefined || s.latency !== undefined, { message: "give availability, latency or both" });

export type Slo = z.infer<typeof SloSchema>;
