import { z } from "zod";
import { FilePathSchema } from "../../config/file-path.ts";
import { DurationSchema, PositiveDurationSchema } from "../../config/primitives.ts";

/** Where a cluster's endpoints come from when they are not listed in the config. */
export const DiscoverySchema = z.discriminatedUnion("type", [
  /** DNS A/AAAA: every address of `host` (through the system resolver, /etc/hosts included), re-resolved every `refresh`. */
  z.strictObject({
    type: z.literal("dns"),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    scheme: z.enum(["http", "https"]).default("http"),
    /** 4, 6, or both (0). Default 0. */
    family: z.union([z.literal(0), z.literal(4), z.literal(6)]).default(0),
    refresh: PositiveDurationSchema.prefault("30s"),
  }),
  /** DNS SRV: targets, ports and weights from the SRV records of `name` (lowest priority only), re-resolved every `refresh`. */
  z.strictObject({
    type: z.literal("srv"),
    name: z.string().min(1),
    scheme: z.enum(["http", "https"]).default("http"),
    refresh: PositiveDurationSchema.prefault("30s"),
    /** DNS servers to ask (`host:port`); the system's when absent. */
    servers: z.array(z.string().min(1)).min(1).optional(),
  }),
  /** A JSON or YAML file holding `endpoints: [...]` (as in the config), watched for changes. */
  z.strictObject({
    type: z.literal("file"),
    /** Relative to the config file's folder. */
    path: FilePathSchema,
    /** Also re-read on this interval, in case a change notification is missed. Default 10s. */
    refresh: PositiveDurationSchema.prefault("10s"),
  }),
]);

export type DiscoveryConfig = z.infer<typeof DiscoverySchema>;

/** One endpoint as discovery reports it. */
export interface EndpointSpec {
  url: string;
  weight: number;
}
