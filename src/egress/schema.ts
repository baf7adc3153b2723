import { z } from "zod";
import { CidrSchema, DurationSchema } from "../config/primitives.ts";

const HOST_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** One allowed destination: a host name (exact, or `*.example.com` for any subdomain) or an address range, on some ports. */
export const EgressRuleSchema = z
  .strictObject({
    /** `api.example.com`, or `*.example.com` (any subdomain, not example.com itself); case-insensitive. */
    host: z.string().toLowerCase().regex(HOST_PATTERN, "must be a host name, optionally starting with *.").optional(),
    /**
     * An address or range (`10.0.0.0/8`, `2001:db8::/32`): destinations whose address falls in it.
     * The only way to allow loopback, link-local (cloud metadata) or unspecified addresses.
     */
    cidr: CidrSchema.optional(),
    /** Destination ports. Default 80 and 443. */
    ports: z.array(z.number().int().min(1).max(65535)).min(1).default([80, 443]),
  })
  .refine((r) => (r.host === undefined) !== (r.cidr === undefined), { message: "give exactly one of host or cidr" });

/**
 * An egress (forward) proxy listener: the local service sends absolute-form HTTP requests
 * (`GET http://host/path`) and CONNECT tunnels here; only allowed destinations are reached.
 */
export const EgressSchema = z.strictObject({
  /** Destinations that may be reached; everything else gets 403. */
  allow: z.array(EgressRuleSchema).min(1),
  timeouts: z
    .strictObject({
      /** Establishing the TCP connection to the destination. Default 5s. */
      connect: DurationSchema.prefault("5s").refine((ms) => ms > 0, "must be more than 0"),
      /** No bytes in either direction for this long closes a tunnel or aborts an exchange; `0` disables. Default 60s. */
      idle: DurationSchema.prefault("60s"),
      /** A whole HTTP exchange (not tunnels), until the response body ends; `0` = none. Default 0. */
      request: DurationSchema.prefault("0"),
    })
    .prefault({}),
});

export type EgressConfig = z.infer<typeof EgressSchema>;
export type EgressRule = z.infer<typeof EgressRuleSchema>;
