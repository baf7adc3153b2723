/**
 * Heartbeats: each instance (its agent) writes what it is and how it does to a key that expires
 * with fleet.heartbeat.ttl and stamps its entry in a sorted set with Redis's clock (instances'
 * clocks may differ). An instance is live while its stamp is younger than the ttl: that is who a
 * purge waits for, and who /fleet and GetConfig list. Entries ten ttls old are swept.
 */
import type { FleetKeys } from "./keys.ts";
import { redisScript } from "../util/redis-link.ts";
import type { FleetRedis } from "./redis.ts";
import type { z } from "zod";
import { type Heartbeat, HeartbeatSchema } from "./records-schema.ts";

// KEYS[1]: the sorted set, KEYS[2]: this instance's key. ARGV: id, heartbeat JSON, ttl (ms).
// Returns the heartbeat it replaces ('' for none).
const BEAT = redisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
local before = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * tonumber(ARGV[3]))
return before or ''
`);

// KEYS[1]: the sorted set. ARGV: ttl (ms), the instance key prefix. Returns now, then id, stamp, heartbeat JSON of each live instance.
const LIVE = redisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
local out = {now}
for i = 1, #ids, 2 do
  table.insert(out, ids[i])
  table.insert(out, ids[i + 1])
  table.insert(out, redis.call('GET', ARGV[2] .. ids[i]) or '')
end
return out
`);

/** Sends a heartbeat; returns the one it replaced (another process's, if two instances were given one id). */
export async function sendHeartbeat(redis: FleetRedis, keys: FleetKeys, beat: Heartbeat, ttlMs: number): Promise<Heartbeat | undefined> {
  const before = await redis.eval("heartbeat", BEAT, [keys.instances, `${keys.instancePrefix}${beat.id}`], [beat.id, JSON.stringify(beat), String(ttlMs)]);
  return parseJson(HeartbeatSchema, typeof before === "string" ? before : undefined);
}

/** Leaving (shutdown): no longer live, so no purge waits for it. */
export async function removeHeartbeat(redis: FleetRedis, keys: FleetKeys, id: string): Promise<void> {
  await redis.call("heartbeat", "ZREM", [keys.instances, id]);
  await redis.call("heartbeat", "DEL", [`${keys.instancePrefix}${id}`]);
}

export interface LiveInstance {
  id: string;
  /** Its last heartbeat, ms since the epoch (Redis's clock). */
  lastMs: number;
  beat: Heartbeat | undefined;
}

export async function liveInstances(redis: FleetRedis, keys: FleetKeys, ttlMs: number, timeoutMs?: number): Promise<LiveInstance[]> {
  const reply = await redis.eval("heartbeat", LIVE, [keys.instances], [String(ttlMs), keys.instancePrefix], timeoutMs);
  const flat = Array.isArray(reply) ? reply : [];
  const out: LiveInstance[] = [];
  for (let i = 1; i + 2 < flat.length; i += 3) {
    const text = String(flat[i + 2] ?? "");
    out.push({ id: String(flat[i]), lastMs: Number(flat[i + 1]), beat: parseJson(HeartbeatSchema, text) });
  }
  return out;
}

/** A JSON value from Redis through its schema; undefined when absent or not of that shape. */
export function parseJson<T>(schema: z.ZodType<T>, text: string | null | undefined): T | undefined {
  if (text === null || text === undefined || text === "") return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
