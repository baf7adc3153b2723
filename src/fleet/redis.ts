/**
 * The fleet's connection to Redis: the RedisLink the global rate limits use too (util/redis-link.ts:
 * no hidden reconnection or offline queue, every call bounded, an outage skipped for
 * `retry_interval`), with failures counted by feature and outages logged as the fleet's.
 * Replies are RESP3 (maps become objects).
 */
import { fleetState, metrics } from "../observe/metrics.ts";
import type { Clock } from "../util/clock.ts";
import { RedisLink, RedisUnavailable, type RedisScript, redactRedisUrl } from "../util/redis-link.ts";

/** What a fleet call is for: a metric label. */
export type Feature = "idempotency" | "purge" | "config" | "heartbeat" | "log";

export function logFleet(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

export interface FleetRedisOptions {
  url: string;
  timeoutMs: number;
  retryIntervalMs: number;
  /** Names this connection in log lines (`requests`, `agent`, `log reader`). */
  role: string;
  /** Tells the agent's gauge (only the agent's own connection does). */
  reportsState?: boolean;
  now?: Clock;
}

/** A RedisLink that counts failures by feature, logs outages as the fleet's and tells the agent when Redis answers again. */
export class FleetRedis {
  private readonly link: RedisLink;
  /** Called once each time Redis answers again after an outage (and at the first answer). */
  onReachable: () => void = () => {};

  constructor(readonly options: FleetRedisOptions) {
    const { url, role, reportsState } = options;
    this.link = new RedisLink(url, options.retryIntervalMs, {
      down: (error) => {
        if (reportsState) fleetState.redisUp = 0;
        logFleet({ level: "warn", msg: "fleet: redis unreachable", connection: role, redis: redactRedisUrl(url), error: error.message });
      },
      up: (again) => {
        if (reportsState) fleetState.redisUp = 1;
        if (again) logFleet({ msg: "fleet: redis reachable again", connection: role, redis: redactRedisUrl(url) });
        this.onReachable();
      },
    }, options.now);
  }

  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** Connected and not known to be failing. */
  get up(): boolean {
    return this.link.up;
  }

  /** One command; throws RedisUnavailable when Redis cannot answer within `timeoutMs`. */
  call(feature: Feature, command: string, args: string[], timeoutMs = this.options.timeoutMs): Promise<unknown> {
    return this.link.send(command, args, timeoutMs).catch((e: unknown) => this.counted(feature, e));
  }

  /** A Lua script by its digest (loaded first when the server does not know it). */
  eval(feature: Feature, s: RedisScript, keys: string[], args: string[], timeoutMs = this.options.timeoutMs): Promise<unknown> {
    return this.link.eval(s, keys, args, timeoutMs).catch((e: unknown) => this.counted(feature, e));
  }

  /** Closes the connection; later calls fail at once. */
  dispose(): void {
    this.link.dispose();
  }

  private counted(feature: Feature, e: unknown): never {
    const error = e instanceof RedisUnavailable ? e : new RedisUnavailable("error", `redis: ${(e as Error)?.message ?? String(e)}`, e);
    metrics.fleetRedisErrors.inc([feature, error.reason]);
    throw error;
  }
}
