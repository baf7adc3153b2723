import type { AccessLog } from "../observe/access-log.ts";
import type { Resolver } from "./destination.ts";
import type { EgressPolicy } from "./policy.ts";
import type { EgressConfig } from "./schema.ts";

/** What an egress listener's handlers need, built once when the listener starts. */
export interface EgressOptions {
  readonly listener: string;
  readonly config: EgressConfig;
  readonly policy: EgressPolicy;
  /** Largest request body forwarded (the listener's max_request_body). */
  readonly maxBody: number;
  /** The access log of the runtime in force (it follows reloads). */
  accessLog(): AccessLog;
  /** Name resolution (the system's by default). */
  readonly resolve?: Resolver;
}
