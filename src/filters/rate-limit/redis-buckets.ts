/**
 * Global buckets in Redis, shared by every instance: the GCRA step of gcra.ts as one Lua script
 * (atomic: Redis runs a script alone), timed by Redis's own clock (TIME) so instances with skewed
 * clocks agree. Never waits longer than the limit's timeout: a dead or hung Redis makes the
 * request go on without it, and after a failure Redis is skipped for `retry_interval` before one
 * request tries again (so an outage costs no latency and piles up no commands).
 */
import { RedisClient } from "bun";
import { type Clock, monotonicMs } from "../../util/clock.ts";
import type { BucketShape, Verdict } from "./gcra.ts";

// KEYS[1]: the bucket. ARGV[1]: emission interval (ms), ARGV[2]: burst tolerance (ms).
// Returns {allowed, remaining, reset ms, retry ms}; the TAT is stored with 3 decimals and expires
// when the bucket is full again (an absent key is a full bucket).
const SCRIPT = `
local e = tonumber(ARGV[1])
local tol = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then tat = math.max(tonumber(stored) or now, now) end
local nxt = tat + e
local allow_at = nxt - tol
if allow_at - now > 1e-6 then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', nxt), 'PX', math.max(1, math.ceil(nxt - now)))
return {1, math.max(0, math.floor((now - allow_at) / e + 1e-9)), math.ceil(nxt - now), 0}
`;
export const SCRIPT_SHA = new Bun.CryptoHasher("sha1").update(SCRIPT).digest("hex");

/** Why Redis gave no verdict: no answer in time, an error, or skipped because it failed moments ago. */
export class RedisUnavailable extends Error {
  constructor(readonly reason: "timeout" | "error" | "down", message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "RedisUnavailable";
  }
}

function logEvent(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/** Redis URLs may carry a password: logs name only scheme, host and port. */
function redact(url: string): string {
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
    timer = setTimeout(() => reject(new RedisUnavailable("timeout", `redis did not ${what} within ${ms}ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** One connection per Redis URL (shared by the limits that use it), reconnected on demand. */
export class RedisConnection {
  private client: RedisClient | undefined;
  private connecting: Promise<void> | undefined;
  private connectStartedAt = 0;
  private retryAt = Number.NEGATIVE_INFINITY;
  private down = false;
  private disposed = false;
  /** A server-side refusal was logged (once: it would repeat on every request). */
  private refusalLogged = false;

  constructor(
    readonly url: string,
    private readonly retryIntervalMs: number,
    private readonly now: Clock = monotonicMs,
  ) {}

  /** One GCRA step for `key`; throws RedisUnavailable when Redis cannot answer within `timeoutMs`. */
  async take(key: string, shape: BucketShape, timeoutMs: number): Promise<Verdict> {
    const client = await this.ready(timeoutMs);
    const args = ["1", key, String(shape.emissionMs), String(shape.toleranceMs)];
    let reply: unknown;
    try {
      reply = await withTimeout(
        client.send("EVALSHA", [SCRIPT_SHA, ...args]).catch((e: unknown) => {
          if (!String((e as Error)?.message).startsWith("NOSCRIPT")) throw e;
          return client.send("EVAL", [SCRIPT, ...args]); // first use on this server (or after a restart)
        }),
        timeoutMs, "answer",
      );
    } catch (e) {
      // A server-side error (a wrong-type key…) concerns one key; anything else, the connection.
      if ((e as { code?: string })?.code === "ERR_REDIS_SERVER_ERROR") {
        const error = new RedisUnavailable("error", `redis refused the rate-limit script: ${(e as Error).message}`, e);
        if (!this.refusalLogged) {
          this.refusalLogged = true;
          logEvent({ level: "warn", msg: "redis refused the rate-limit script; those requests use on_failure (logged once)", redis: redact(this.url), error: error.message });
        }
        throw error;
      }
      throw this.failed(client, e);
    }
    this.reachable();
    return parseReply(reply);
  }

  /** A connected client, connecting first if due; throws when Redis is being skipped. */
  private async ready(timeoutMs: number): Promise<RedisClient> {
    if (this.client?.connected && this.connecting === undefined) return this.client;
    const now = this.now();
    if (this.connecting === undefined) {
      if (now < this.retryAt || this.disposed) throw new RedisUnavailable("down", "redis failed recently; skipped until the retry interval has passed");
      this.retryAt = now + this.retryIntervalMs;
      this.connectStartedAt = now;
      // Reconnection is ours (autoReconnect off, no offline queue): commands never wait for a connection behind our back.
      this.client?.close();
      const client = new RedisClient(this.url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: Math.max(1000, this.retryIntervalMs) });
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
      // A connect that is taking long (a host that drops packets): don't make every request wait on it.
      throw new RedisUnavailable("down", "redis connection still being established");
    }
    await withTimeout(this.connecting!, timeoutMs, "accept a connection");
    return this.client!;
  }

  /** Closes the failed client (its queued commands fail at once), logs the outage once, returns the error to throw. */
  private failed(client: RedisClient, e: unknown): RedisUnavailable {
    const error = e instanceof RedisUnavailable ? e : new RedisUnavailable("error", `redis: ${(e as Error)?.message ?? String(e)}`, e);
    if (client === this.client) {
      this.client = undefined;
      this.retryAt = this.now() + this.retryIntervalMs;
      client.close();
    }
    if (!this.down && !this.disposed) {
      this.down = true;
      logEvent({ level: "warn", msg: "redis unreachable; global rate limits use their on_failure setting", redis: redact(this.url), error: error.message });
    }
    return error;
  }

  private reachable(): void {
    if (!this.down) return;
    this.down = false;
    logEvent({ msg: "redis reachable again; global rate limits back in force", redis: redact(this.url) });
  }

  /** Once no runtime uses it (runtime dispose): close the connection. */
  dispose(): void {
    this.disposed = true;
    this.client?.close();
    this.client = undefined;
  }
}

function parseReply(reply: unknown): Verdict {
  if (!Array.isArray(reply) || reply.length !== 4 || !reply.every((n) => typeof n === "number")) {
    throw new RedisUnavailable("error", `unexpected reply from the rate-limit script: ${JSON.stringify(reply)?.slice(0, 100)}`);
  }
  const [allowed, remaining, resetMs, retryMs] = reply as number[];
  return { allowed: allowed === 1, remaining: remaining!, resetMs: resetMs!, retryMs: retryMs! };
}
