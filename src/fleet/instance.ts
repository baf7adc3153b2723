/**
 * Who this instance is: the Fly.io machine and region (FLY_MACHINE_ID, FLY_REGION, which Fly sets
 * in every machine's environment), else the host name and no region. Read once at start: the
 * access log, span resources, heartbeats and `fly_replay` all name the same instance. A leaf.
 * Worker processes of one machine are one instance (the same id).
 */
import { hostname } from "node:os";

export interface InstanceIdentity {
  /** FLY_MACHINE_ID, else the host name. */
  readonly id: string;
  /** FLY_REGION; undefined off Fly.io. */
  readonly region: string | undefined;
  /** When this process started (ISO 8601). */
  readonly startedAt: string;
  /** Random per process start: tells a restarted instance (or two instances given one id) apart. */
  readonly boot: string;
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === "" ? undefined : v.trim());

export function identityFrom(env: Record<string, string | undefined>): InstanceIdentity {
  return Object.freeze({
    id: nonEmpty(env.FLY_MACHINE_ID) ?? hostname(),
    region: nonEmpty(env.FLY_REGION),
    startedAt: new Date().toISOString(),
    boot: crypto.randomUUID(),
  });
}

export const instance: InstanceIdentity = identityFrom(process.env);
