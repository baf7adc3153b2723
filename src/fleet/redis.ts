/**
 * The fleet's connection to Redis, on the pattern of the global rate limits'
 * (filters/rate-limit/redis-buckets.ts): Bun's RedisClient with its own reconnection and offline
 * queue off, so a command never waits for a connection behind our back; every call bounded by a
 * timeout; after a failure Redis is skipped for `retry_interval` (an outage costs no latency and
 * piles up no commands), then one call tries again. Failures are counted by feature and logged
 * once per outage. Replies are RESP3 (maps become objects).
 */
import { RedisClient } from "bun";
import { fleetState, metrics } from "../observe/metrics.ts";
import { type Clock, monotonicMs } from "../util/clock.ts";

/** What a fleet call is for: a metric label. */
export type Feature = "idempotency" | "purge" | "config" | "heartbeat" | "log";

/** Redis gave no answer: none in time, an error, or skipped because it failed moments ago. */
export class FleetUnavailable extends Error {
  constructor(readonly reason: "timeout" | "error" | "down", message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "FleetUnavailable";
  }
}

export interface Script {
  readonly source: string;
  readonly sha: string;
}

export const script = (source: string): Script => ({ source, sha: new Bun.CryptoHasher("sha1").update(source).digest("hex") });

export function logFleet(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/** Redis URLs may carry a password: logs and /fleet name only scheme, host and port. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "" : u.pathname}`;
  } catch {
    return "(redis)";
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FleetUnavailable("timeout", `redis did not ${what} within ${ms}ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
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

export class FleetRedis {
  private client: RedisClient | undefined;
  private connecting: Promise<void> | undefined;
  private connectStartedAt = 0;
  private retryAt = Number.NEGATIVE_INFINITY;
  private down = false;
  private everReached = false;
  private disposed = false;
  private readonly now: Clock;
  /** Called once each time Redis answers again after an outage (and at the first answer). */
  onReachable: () => void = () => {};

  constructor(readonly options: FleetRedisOptions) {
    this.now = options.now ?? monotonicMs;
  }

  get timeoutMs(): number {
    return this.options.timeoutMs;
  }

  /** Connected and not known to be failing. */
  get up(): boolean {
    return !this.down && this.client?.connected === true;
  }

  /** One command; throws FleetUnavailable when Redis cannot answer within `timeoutMs`. */
  async call(feature: Feature, command: string, args: string[], timeoutMs = this.options.timeoutMs): Promise<unknown> {
    try {
      const client = await this.ready(timeoutMs);
      return await this.answered(client, withTimeout(client.send(command, args), timeoutMs, "answer"));
    } catch (e) {
      const error = this.classify(e);
      metrics.fleetRedisErrors.inc([feature, error.reason]);
      throw error;
    }
  }

  /** A Lua script by its digest, loaded first when the server does not know it (its first use, or after a restart). */
  async eval(feature: Feature, s: Script, keys: string[], args: string[], timeoutMs = this.options.timeoutMs): Promise<unknown> {
    try {
      const client = await this.ready(timeoutMs);
      const params = [String(keys.length), ...keys, ...args];
      const reply = client.send("EVALSHA", [s.sha, ...params]).catch((e: unknown) => {
        if (!String((e as Error)?.message).startsWith("NOSCRIPT")) throw e;
        return client.send("EVAL", [s.source, ...params]);
      });
      return await this.answered(client, withTimeout(reply, timeoutMs, "answer"));
    } catch (e) {
      const error = this.classify(e);
      metrics.fleetRedisErrors.inc([feature, error.reason]);
      throw error;
    }
  }

  /** The reply, or (on a connection failure) the error after the client is closed. A server's refusal of one command leaves the connection be. */
  private async answered<T>(client: RedisClient, reply: Promise<T>): Promise<T> {
    try {
      const value = await reply;
      this.reachable();
      return value;
    } catch (e) {
      if ((e as { code?: string })?.code === "ERR_REDIS_SERVER_ERROR") throw new FleetUnavailable("error", `redis refused: ${(e as Error).message}`, e);
      throw this.failed(client, e);
    }
  }

  private classify(e: unknown): FleetUnavailable {
    return e instanceof FleetUnavailable ? e : new FleetUnavailable("error", `redis: ${(e as Error)?.message ?? String(e)}`, e);
  }

  /** A connected client, connecting first if due; throws when Redis is being skipped. */
  private async ready(timeoutMs: number): Promise<RedisClient> {
    if (this.client?.connected && this.connecting === undefined) return this.client;
    const now = this.now();
    if (this.connecting === undefined) {
      if (this.disposed) throw new FleetUnavailable("down", "the fleet's redis connection is closed");
      if (now < this.retryAt) throw new FleetUnavailable("down", "redis failed recently; skipped until the retry interval has passed");
      this.retryAt = now + this.options.retryIntervalMs;
      this.connectStartedAt = now;
      this.client?.close();
      const client = new RedisClient(this.options.url, {
        autoReconnect: false, enableOfflineQueue: false, connectionTimeout: Math.max(1000, this.options.retryIntervalMs),
      });
      client.onclose = () => {};
      this.client = client;
      const attempt = client.connect().then(
        () => {
          this.connecting = undefined;
        },
        (e: unknown) => {
          this.connecting = undefined;
          throw this.failed(client, e);
        },
      );
      attempt.catch(() => {});
      this.connecting = attempt;
    } else if (now - this.connectStartedAt > timeoutMs) {
      throw new FleetUnavailable("down", "redis connection still being established");
    }
    await withTimeout(this.connecting!, timeoutMs, "accept a connection");
    return this.client!;
  }

  /** Closes the failed client (its queued commands fail at once), logs the outage once, returns the error to throw. */
  private failed(client: RedisClient, e: unknown): FleetUnavailable {
    const error = this.classify(e);
    if (client === this.client) {
      this.client = undefined;
      this.retryAt = this.now() + this.options.retryIntervalMs;
      client.close();
    }
    if (!this.down && !this.disposed) {
      this.down = true;
      if (this.options.reportsState) fleetState.redisUp = 0;
      logFleet({ level: "warn", msg: "fleet: redis unreachable", connection: this.options.role, redis: redactUrl(this.options.url), error: error.message });
    }
    return error;
  }

  private reachable(): void {
    if (this.options.reportsState) fleetState.redisUp = 1;
    if (!this.down && this.everReached) return;
    const again = this.down;
    this.down = false;
    this.everReached = true;
    if (again) logFleet({ msg: "fleet: redis reachable again", connection: this.options.role, redis: redactUrl(this.options.url) });
    this.onReachable();
  }

  /** Closes the connection; later calls fail at once. */
  dispose(): void {
    this.disposed = true;
    this.client?.close();
    this.client = undefined;
  }
}
