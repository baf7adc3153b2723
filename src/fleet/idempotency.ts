/**
 * Idempotency keys across the fleet: the record of a key (request fingerprint, state, the answer)
 * is a Redis hash that expires with the route's ttl, claimed by one Lua script, so concurrent
 * requests with one key on different instances make exactly one upstream call (the others get 409
 * while it is in flight), a retry on any instance is replayed, and another request under the key
 * gets 422 — as cache/idempotency.ts does on one machine, whose fingerprint and scoping it shares.
 *
 * Answers up to min(fleet.idempotency.max_answer, the route's max_body) are kept (the body in
 * base64: Bun's client reads strings as UTF-8); a larger one is recorded without its body, and a
 * repeat is 409 idempotency_answer_not_kept — it is never sent upstream again. A 5xx (or a
 * failure) leaves no record, so the client may retry, as on one machine.
 *
 * Redis down or slow (nothing waits longer than fleet.redis.timeout): fleet.idempotency.on_failure
 * — `local` records the key in this machine's libSQL file instead, `allow` forwards unrecorded,
 * `deny` answers 503. A claim whose answer cannot be recorded (Redis failed meanwhile) stays in
 * flight until it lapses (the route's request timeout + 30s): retries get 409 until then.
 */
import { type Claim, claimIdempotencyKey, badKey, fingerprint, inFlightSeconds, inProgress, problem, recordingClaim, recordKeyOf, reused } from "../cache/idempotency.ts";
import { metrics } from "../observe/metrics.ts";
import type { MatchedContext } from "../proxy/context.ts";
import { RedisUnavailable, redisScript } from "../util/redis-link.ts";
import { logFleet } from "./redis.ts";
import type { IdempotencyConfig } from "../cache/hold-schema.ts";
import type { FleetServices } from "./types.ts";

// KEYS[1]: the record. ARGV: fingerprint, owner token, in-flight lifetime (ms).
const CLAIM = redisScript(`
local r = redis.call('HMGET', KEYS[1], 'fingerprint', 'state', 'status', 'headers', 'body')
if not r[1] then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'state', 'in_flight', 'owner', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
return {'exists', r[1], r[2] or '', r[3] or '', r[4] or '', r[5] or ''}
`);

// KEYS[1]: the record. ARGV: owner, state (done | not_kept), status, headers, body (base64), ttl (ms).
// Only the claim's owner records (a claim that lapsed and was taken again is not overwritten).
const RECORD = redisScript(`
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'status', ARGV[3], 'headers', ARGV[4], 'body', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
`);

// KEYS[1]: the record. ARGV: owner. An in-flight claim of this owner is forgotten.
const FORGET = redisScript(`
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'state') == 'in_flight' then
  return redis.call('DEL', KEYS[1])
end
return 0
`);

const count = (outcome: string) => metrics.fleetIdempotency.inc([outcome]);

/** As claimIdempotencyKey, with the record in Redis (falling back as on_failure says). */
export async function claimInFleet(ctx: MatchedContext, config: IdempotencyConfig, key: string, body: ArrayBuffer | undefined, fleet: FleetServices): Promise<Response | Claim> {
  const bad = badKey(ctx, key);
  if (bad !== undefined) return bad;
  const recordKey = fleet.keys.idempotency(new Bun.CryptoHasher("sha256").update(recordKeyOf(ctx, key)).digest("hex"));
  const print = await fingerprint(ctx, body);
  const owner = crypto.randomUUID();
  let reply: unknown;
  try {
    reply = await fleet.redis.eval("idempotency", CLAIM, [recordKey], [print, owner, String(Math.ceil(inFlightSeconds(ctx, config) * 1000))]);
  } catch (e) {
    if (!(e instanceof RedisUnavailable)) throw e;
    return withoutRedis(ctx, config, key, body, fleet);
  }
  const r = Array.isArray(reply) ? reply.map(String) : [];
  if (r[0] === "exists") return answerExisting(ctx, r, print);
  if (r[0] !== "claimed") throw new Error(`unexpected reply from the idempotency script: ${JSON.stringify(reply)?.slice(0, 100)}`);
  count("claimed");

  const cap = Math.min(config.max_body, fleet.config.idempotency.max_answer);
  const forget = () => void fleet.redis.eval("idempotency", FORGET, [recordKey], [owner]).catch(() => {});
  return recordingClaim(cap, forget, async (status, headers, bytes) => {
    await fleet.redis.eval("idempotency", RECORD, [recordKey], [owner, bytes === undefined ? "not_kept" : "done", String(status), JSON.stringify(headers), Buffer.from(bytes ?? new Uint8Array(0)).toString("base64"), String(config.ttl)])
      .catch((e: unknown) => logFleet({ level: "warn", msg: "fleet: an idempotent answer could not be recorded; the key stays in flight until it lapses", request_id: ctx.requestId, error: String(e) }));
  });
}

function answerExisting(ctx: MatchedContext, r: string[], print: string): Response {
  const [, storedPrint, state, status, headers, body] = r;
  if (storedPrint !== print) {
    count("reused");
    return reused(ctx);
  }
  if (state === "not_kept") {
    count("not_kept");
    return problem("idempotency_answer_not_kept", 409,
      `the request with this Idempotency-Key was processed (status ${status}), but its answer was too large to keep; it was not sent again`,
      ctx, { "idempotent-original-status": status ?? "" });
  }
  if (state !== "done") {
    count("in_flight");
    return inProgress(ctx);
  }
  count("replayed");
  const replayed = new Headers(JSON.parse(headers ?? "[]") as [string, string][]);
  replayed.set("idempotent-replayed", "true");
  const bytes = Buffer.from(body ?? "", "base64");
  return new Response(bytes.byteLength === 0 && (Number(status) === 204 || Number(status) === 304) ? null : bytes, { status: Number(status), headers: replayed });
}

/** Redis did not answer: on_failure decides. */
async function withoutRedis(ctx: MatchedContext, config: IdempotencyConfig, key: string, body: ArrayBuffer | undefined, fleet: FleetServices): Promise<Response | Claim> {
  const mode = fleet.config.idempotency.on_failure;
  if (mode === "local") {
    count("local");
    return claimIdempotencyKey(ctx, config, key, body);
  }
  if (mode === "allow") {
    count("allowed");
    return { record: (response) => response, abandon() {} };
  }
  count("denied");
  return problem("idempotency_unavailable", 503, "the Idempotency-Key records cannot be reached; retry later", ctx, { "retry-after": "1" });
}
