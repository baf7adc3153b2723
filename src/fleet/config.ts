/**
 * The fleet config in Redis: one hash holding the latest (id, version, the fleet's part of the
 * document), replaced by a compare-and-set script — a push is built on the config in force where
 * it was made, so it is refused (409) when another push reached the fleet first, never lost in a
 * race — and announced on the log the agents read. Each instance answers every version it sees
 * (ACK: in force; NACK: refused there, with why) in a hash GetConfig and /fleet read.
 */
import { type LiveInstance, liveInstances, parseJson } from "./heartbeat.ts";
import type { FleetKeys } from "./keys.ts";
import { redisScript } from "../util/redis-link.ts";
import type { FleetRedis } from "./redis.ts";
import type { ConfigAnswerState, FleetConfigView, InstanceConfigState } from "./types.ts";
import type { FleetServices } from "./types.ts";
import { type Answer, AnswerSchema } from "./answer-schema.ts";
import { type FleetConfigRecord, FleetConfigRecordSchema } from "./records-schema.ts";

// KEYS[1]: the config hash, KEYS[2]: the log. ARGV: the id it builds on ('' for none), new id,
// the version it builds on, document JSON, version_info, source, origin, log length.
// Returns {1, version} or, when another push came first, {0, that version}. A hash Redis lost
// (restarted empty) takes any push.
const PUBLISH = redisScript(`
local cur = redis.call('HMGET', KEYS[1], 'id', 'version')
local curId = cur[1] or ''
if curId ~= '' and curId ~= ARGV[1] then return {0, tonumber(cur[2]) or 0} end
local version = math.max(tonumber(cur[2]) or 0, tonumber(ARGV[3])) + 1
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'version', version, 'document', ARGV[4], 'version_info', ARGV[5], 'source', ARGV[6], 'origin', ARGV[7], 'at', t[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 't', 'config', 'id', ARGV[2], 'version', version, 'from', ARGV[7])
return {1, version}
`);

// KEYS[1]: the config hash. ARGV: id, version, document JSON, version_info, source, origin.
// Puts back the config an instance runs when Redis has none (it restarted empty), for newcomers.
const SEED = redisScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'version', ARGV[2], 'document', ARGV[3], 'version_info', ARGV[4], 'source', ARGV[5], 'origin', ARGV[6], 'at', '0')
return 1
`);

// KEYS[1]: the config hash, KEYS[2]: the log. ARGV: the id Redis has now, then as SEED, then log length.
// Puts back a newer config than Redis holds (a failover to a replica that had not received it), and announces it.
const RESTORE = redisScript(`
if (redis.call('HGET', KEYS[1], 'id') or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'version', ARGV[3], 'document', ARGV[4], 'version_info', ARGV[5], 'source', ARGV[6], 'origin', ARGV[7], 'at', '0')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 't', 'config', 'id', ARGV[2], 'version', ARGV[3], 'from', ARGV[7])
return 1
`);

export async function restoreConfig(fleet: FleetServices, redis: FleetRedis, replacing: string, record: FleetConfigRecord): Promise<boolean> {
  const reply = await redis.eval("config", RESTORE, [fleet.keys.config, fleet.keys.log], [
    replacing, record.id, String(record.version), JSON.stringify(record.document), record.version_info, record.source, record.origin, String(fleet.config.purge.log_max),
  ]);
  return reply === 1;
}

export type PublishResult = { published: true; version: number } | { published: false; current: number };

export async function publishConfig(fleet: FleetServices, redis: FleetRedis, base: { id: string; version: number } | undefined, record: Omit<FleetConfigRecord, "version">): Promise<PublishResult> {
  const reply = await redis.eval("config", PUBLISH, [fleet.keys.config, fleet.keys.log], [
    base?.id ?? "", record.id, String(base?.version ?? 0), JSON.stringify(record.document), record.version_info, record.source, record.origin, String(fleet.config.purge.log_max),
  ]);
  const [ok, version] = Array.isArray(reply) ? reply.map(Number) : [];
  if (ok === 1) return { published: true, version: version! };
  return { published: false, current: version ?? 0 };
}

export async function seedConfig(keys: FleetKeys, redis: FleetRedis, record: FleetConfigRecord): Promise<boolean> {
  const reply = await redis.eval("config", SEED, [keys.config], [record.id, String(record.version), JSON.stringify(record.document), record.version_info, record.source, record.origin]);
  return reply === 1;
}

/** The fleet config in Redis; undefined when none was pushed (or Redis lost it). */
export async function readConfig(keys: FleetKeys, redis: FleetRedis): Promise<FleetConfigRecord | undefined> {
  const hash = await redis.call("config", "HGETALL", [keys.config]);
  if (hash === null || typeof hash !== "object" || Array.isArray(hash)) return undefined;
  const fields = hash as Record<string, unknown>;
  if (fields.id === undefined) return undefined;
  let document: unknown;
  try {
    document = JSON.parse(String(fields.document ?? ""));
  } catch {
    return undefined;
  }
  const parsed = FleetConfigRecordSchema.safeParse({
    id: fields.id, version: Number(fields.version), document, version_info: String(fields.version_info ?? ""), source: String(fields.source ?? ""), origin: String(fields.origin ?? ""),
  });
  return parsed.success ? parsed.data : undefined;
}

export async function writeAnswer(keys: FleetKeys, redis: FleetRedis, instance: string, answer: Answer): Promise<void> {
  await redis.call("config", "HSET", [keys.configAnswers, instance, JSON.stringify(answer)]);
}

async function readAnswers(keys: FleetKeys, redis: FleetRedis, timeoutMs?: number): Promise<Map<string, Answer>> {
  const hash = await redis.call("config", "HGETALL", [keys.configAnswers], timeoutMs);
  const out = new Map<string, Answer>();
  if (hash === null || typeof hash !== "object" || Array.isArray(hash)) return out;
  for (const [id, text] of Object.entries(hash as Record<string, unknown>)) {
    const answer = parseJson(AnswerSchema, String(text));
    if (answer !== undefined) out.set(id, answer);
  }
  return out;
}

/** Each live instance (and any that answered the current version) with its answer to `current`. */
function instanceStates(live: LiveInstance[], answers: Map<string, Answer>, current: number): InstanceConfigState[] {
  const ids = new Set([...live.map((l) => l.id), ...[...answers].filter(([, a]) => a.fleet_version === current && current > 0).map(([id]) => id)]);
  return [...ids].sort().map((id): InstanceConfigState => {
    const a = answers.get(id);
    const beat = live.find((l) => l.id === id)?.beat;
    const answered = a?.fleet_version ?? 0;
    const answer: ConfigAnswerState = current === 0 ? (a === undefined ? "ack" : a.answer) : a === undefined || answered < current ? "pending" : a.answer;
    return {
      instance: id,
      region: beat?.region ?? a?.region ?? null,
      fleet_version: answered,
      answer,
      message: a?.answer === "nack" ? a.message : null,
      version: a?.version ?? beat?.config_version ?? null,
      running_fleet_version: a?.running_fleet_version ?? beat?.fleet_version ?? 0,
    };
  });
}

/** The fleet config's version and every live instance's answer. */
export async function configView(fleet: FleetServices, redis: FleetRedis, timeoutMs?: number): Promise<FleetConfigView> {
  const [version, live, answers] = await Promise.all([
    redis.call("config", "HGET", [fleet.keys.config, "version"], timeoutMs),
    liveInstances(redis, fleet.keys, fleet.config.heartbeat.ttl, timeoutMs),
    readAnswers(fleet.keys, redis, timeoutMs),
  ]);
  const current = Number(version ?? 0) || 0;
  return { fleet_version: current, instances: instanceStates(live, answers, current) };
}

/** After a push: waits (up to config.ack_timeout) until every live instance answered `version`; the view at that moment. */
export async function awaitAnswers(fleet: FleetServices, redis: FleetRedis, version: number): Promise<FleetConfigView> {
  const deadline = performance.now() + fleet.config.config.ack_timeout;
  let pause = 5;
  for (;;) {
    const left = deadline - performance.now();
    let view: FleetConfigView;
    try {
      view = await configView(fleet, redis, Math.max(1, Math.min(redis.timeoutMs, Math.ceil(left))));
    } catch {
      return { fleet_version: version, instances: [] };
    }
    if (view.instances.every((i) => i.answer !== "pending") || left <= 0) return view;
    await Bun.sleep(Math.min(pause, Math.max(0, deadline - performance.now())));
    pause = Math.min(pause * 2, 25);
  }
}
