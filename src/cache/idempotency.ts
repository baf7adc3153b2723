/**
 * Idempotency keys (draft-ietf-httpapi-idempotency-key-header): a POST/PUT/PATCH with an
 * Idempotency-Key is forwarded once; its answer is stored in the libSQL file under the route, the
 * key and a fingerprint of the request. A repeat gets the stored answer (idempotent-replayed:
 * true); the same key with another request gets 422; a repeat while the first is in flight 409.
 * A failed first attempt (an upstream failure or 5xx) leaves no record, so it may be retried.
 */
import { wallSeconds } from "../util/clock.ts";
import type { MatchedContext } from "../proxy/context.ts";
import { errorResponse, SwitchyardError } from "../util/errors.ts";
import { sharedStore, type Store } from "../store/client.ts";
import type { IdempotencyConfig } from "./hold-schema.ts";
import { responseFromMemory } from "../util/memory-body.ts";
import { keepWhilePassing } from "../util/keep-while-passing.ts";

const KEY_RE = /^[\x21-\x7e]{1,255}$/;

/** A claimed key: the request goes upstream; `record` stores its answer, `abandon` forgets the claim. */
export interface Claim {
  record(response: Response): Response;
  abandon(): void;
}

export function problem(code: string, status: number, message: string, ctx: MatchedContext, headers?: Record<string, string>): Response {
  return errorResponse(new SwitchyardError({ code, status, source: "client", message, headers }), ctx.requestId);
}

/** A 400 for a key that is not 1 to 255 visible ASCII characters; undefined for a good one. */
export function badKey(ctx: MatchedContext, key: string): Response | undefined {
  return KEY_RE.test(key) ? undefined : problem("bad_idempotency_key", 400, "the Idempotency-Key must be 1 to 255 visible ASCII characters", ctx);
}

/** Scoped to the route and the caller: the same key from other credentials is another record. */
export function recordKeyOf(ctx: MatchedContext, key: string): string {
  const caller = new Bun.CryptoHasher("sha256").update(`${ctx.headers.get("authorization") ?? ""}\n${ctx.headers.get("cookie") ?? ""}\n${ctx.headers.get("x-api-key") ?? ""}`).digest("hex").slice(0, 32);
  return `${ctx.route.name}\n${caller}\n${key}`;
}

export const inProgress = (ctx: MatchedContext) => problem("idempotency_request_in_progress", 409, "a request with this Idempotency-Key is being processed; retry later", ctx);
export const reused = (ctx: MatchedContext) => problem("idempotency_key_reused", 422, "this Idempotency-Key was used for a different request", ctx);

/** What a request is, for telling a retry from another request under the same key. */
export async function fingerprint(ctx: MatchedContext, body: ArrayBuffer | undefined): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(`${ctx.method}\n${ctx.host}\n${ctx.path}?${ctx.query}\n${ctx.headers.get("content-type") ?? ""}\n`);
  if (body) hasher.update(new Uint8Array(body));
  return hasher.digest("hex");
}

/**
 * For a request the route's idempotency applies to: a replayed, 409 or 422 response, or a claim.
 * `body` is the request body, already read (≤ max_body).
 */
export async function claimIdempotencyKey(ctx: MatchedContext, config: IdempotencyConfig, key: string, body: ArrayBuffer | undefined): Promise<Response | Claim> {
  const bad = badKey(ctx, key);
  if (bad !== undefined) return bad;
  const store = await sharedStore(config.path);
  const recordKey = recordKeyOf(ctx, key);
  const print = await fingerprint(ctx, body);
  const now = wallSeconds();
  const claimed = await store.execute(
    `INSERT INTO idempotency (record_key, fingerprint, state, expires_at) VALUES (?, ?, 'in_flight', ?)
     ON CONFLICT (record_key) DO UPDATE SET fingerprint = excluded.fingerprint, state = 'in_flight', status = NULL, headers = NULL, body = NULL, expires_at = excluded.expires_at
     WHERE idempotency.expires_at < ?`,
    // In flight, a claim lapses after the route's request time (a crashed proxy must not block
    // retries for the whole ttl); once answered it is kept for the ttl.
    [recordKey, print, now + inFlightSeconds(ctx, config), now],
  );
  if (Math.random() < 0.01) void store.execute("DELETE FROM idempotency WHERE expires_at < ?", [now]).catch(() => {}); // expired records go, now and then
  if (claimed.rowsAffected === 0) return answerExisting(ctx, store, recordKey, print);

  const forget = () => void store.execute("DELETE FROM idempotency WHERE record_key = ? AND state = 'in_flight'", [recordKey]).catch(() => {});
  return recordingClaim(config.max_body, forget, async (status, headers, bytes) => {
    if (bytes === undefined) return forget(); // too large to keep
    await save(store, recordKey, status, headers, bytes, config.ttl).catch(forget);
  });
}

/**
 * The claim on a record, whatever keeps it: a 5xx, an abandoned request or a cut body forgets the
 * claim (the client may retry); any other answer is saved (`bytes` undefined: larger than `cap`)
 * before the client's stream ends, so a retry sent at once is replayed, not a 409, and saved even
 * if the client leaves first: that is when it retries. `save` settles without throwing.
 */
export function recordingClaim(cap: number, forget: () => void, save: (status: number, headers: [string, string][], bytes: Uint8Array | undefined) => Promise<void>): Claim {
  let settled = false;
  return {
    abandon() {
      if (settled) return;
      settled = true;
      forget();
    },
    record(response) {
      settled = true;
      if (response.status >= 500) {
        forget();
        return response;
      }
      const headers = [...response.headers].filter(([name]) => name !== "x-request-id"); // each request has its own
      if (response.body === null) {
        void save(response.status, headers, new Uint8Array(0));
        return response;
      }
      const toClient = keepWhilePassing(response.body, cap, { keep: (bytes) => save(response.status, headers, bytes), failed: forget }, true);
      return new Response(toClient, { status: response.status, statusText: response.statusText, headers: response.headers });
    },
  };
}

async function save(store: Store, recordKey: string, status: number, headers: [string, string][], body: Uint8Array, ttlMs: number): Promise<void> {
  await store.execute("UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ?, expires_at = ? WHERE record_key = ?", [status, JSON.stringify(headers), body, wallSeconds() + ttlMs / 1000, recordKey]);
}

/** How long an in-flight claim holds: the route's request timeout (or 5 minutes without one) plus a margin, within the ttl. */
export function inFlightSeconds(ctx: MatchedContext, config: IdempotencyConfig): number {
  const request = ctx.route.config.timeouts.request;
  return Math.min(config.ttl, (request > 0 ? request : 300_000) + 30_000) / 1000;
}

async function answerExisting(ctx: MatchedContext, store: Store, recordKey: string, print: string): Promise<Response> {
  const row = (await store.execute("SELECT fingerprint, state, status, headers, body FROM idempotency WHERE record_key = ?", [recordKey])).rows[0];
  if (row === undefined) return inProgress(ctx);
  if (String(row.fingerprint) !== print) return reused(ctx);
  if (String(row.state) !== "done") return inProgress(ctx);
  const headers = new Headers(JSON.parse(String(row.headers)) as [string, string][]);
  headers.set("idempotent-replayed", "true");
  const body = row.body === null ? null : new Uint8Array(row.body as ArrayBuffer);
  return body === null ? new Response(null, { status: Number(row.status), headers }) : responseFromMemory(body, { status: Number(row.status), headers });
}
