/** A route's `mirror`: a sampled copy of requests to a shadow cluster (proxy/mirror.ts). */
import { z } from "zod";
import { DurationSchema, SizeSchema } from "../config/primitives.ts";

export const MirrorSchema = z.strictObject({
  /** The shadow cluster. */
  cluster: z.string().min(1),
  /** Share of requests copied, in %. Default 100. */
  percent: z.number().min(0).max(100).default(100),
  /** Requests with a larger body are not mirrored (the body must be kept to be sent twice). Default 64KiB. */
  max_body: SizeSchema.prefault("64KiB"),
  /** The shadow request is abandoned after this. Default 5s. */
  timeout: DurationSchema.prefault("5s"),
});

export type MirrorConfig = z.infer<typeof MirrorSchema>;
