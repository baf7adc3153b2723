/**
 * Global buckets in Redis, shared by every instance: the GCRA step of gcra.ts as one Lua script
 * (atomic: Redis runs a script alone), timed by Redis's own clock (TIME) so instances with skewed
 * clocks agree. Never waits longer than the limit's timeout: a dead or hung Redis makes the
 * request go on without it, and after a failure Redis is skipped for `retry_interval` before one
 * request tries again (so an outage costs no latency and piles up no commands).
 */
import type { Clock } from "../../util/clock.ts";
import { RedisLink, RedisUnavailable, redactRedisUrl, redisScript } from "../../util/redis-link.ts";
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
const GCRA = redisScript(SCRIPT);
export const SCRIPT_SHA = GCRA.sha;

function logEvent(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/** One connection per Redis URL (shared by the limits that use it), reconnected on demand. */
export class RedisConnection {
  private readonly link: RedisLink;
  /** A server-side refusal was logged (once: it would repeat on every request). */
  private refusalLogged = false;

  constructor(readonly url: string, retryIntervalMs: number, now?: Clock) {
    this.link = new RedisLink(url, retryIntervalMs, {
      down: (error) => logEvent({ level: "warn", msg: "redis unreachable; global rate limits use their on_failure setting", redis: redactRedisUrl(url), error: error.message }),
      up: (again) => {
        if (again) logEvent({ msg: "redis reachable again; global rate limits back in force", redis: redactRedisUrl(url) });
      },
    }, now);
  }

  /** One GCRA step for `key`; throws RedisUnavailable when Redis cannot answer within `timeoutMs`. */
  async take(key: string, shape: BucketShape, timeoutMs: number): Promise<Verdict> {
    let reply: unknown;
    try {
      reply = await this.link.eval(GCRA, [key], [String(shape.emissionMs), String(shape.toleranceMs)], timeoutMs);
    } catch (e) {
      // A server-side error (a wrong-type key…) concerns one key and leaves the connection be.
      if (e instanceof RedisUnavailable && e.refusal && !this.refusalLogged) {
        this.refusalLogged = true;
        logEvent({ level: "warn", msg: "redis refused the rate-limit script; those requests use on_failure (logged once)", redis: redactRedisUrl(this.url), error: e.message });
      }
      throw e;
    }
    return parseReply(reply);
  }

  /** Once no runtime uses it (runtime dispose): close the connection. */
  dispose(): void {
    this.link.dispose();
  }
}

function parseReply(reply: unknown): Verdict {
  if (!Array.isArray(reply) || reply.length !== 4 || !reply.every((n) => typeof n === "number")) {
    throw new RedisUnavailable("error", `unexpected reply from the rate-limit script: ${JSON.stringify(reply)?.slice(0, 100)}`);
  }
  const [allowed, remaining, resetMs, retryMs] = reply as number[];
  return { allowed: allowed === 1, remaining: remaining!, resetMs: resetMs!, retryMs: retryMs! };
}
