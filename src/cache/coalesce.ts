/**
 * Request coalescing for routes without a cache: identical concurrent GETs (same target and
 * content-negotiation headers, no credentials) make one upstream request; the others are streamed
 * its answer as it arrives, or go upstream themselves when the answer has no declared length or a
 * larger one than max_body, carries a Set-Cookie, or fails first. In-process only.
 */
import { metrics } from "../observe/metrics.ts";
import type { MatchedContext } from "../proxy/context.ts";
import { Broadcast, broadcastBody } from "./broadcast.ts";
import type { CoalesceConfig } from "./hold-schema.ts";

/** What followers wait for: the leader's answer as a broadcast, or undefined (go upstream yourselves). */
const inflight = new Map<string, Promise<Broadcast | undefined>>();

/** The coalescing key, or undefined when this request must not share (not a GET, or it carries credentials). */
/** Requests whose answer depends on more than the key: credentials, ranges, preconditions. */
const NOT_SHARED = ["authorization", "cookie", "x-api-key", "proxy-authorization", "range", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"];
/** The request headers that are part of the key, so an answer may Vary on these only. */
const KEYED = new Set(["accept", "accept-encoding", "accept-language"]);

export function coalesceKey(ctx: MatchedContext): string | undefined {
  // An authenticated caller's answer may be its own, whatever header carried the credential.
  if (ctx.method !== "GET" || ctx.auth !== undefined) return undefined;
  const h = ctx.headers;
  for (const name of NOT_SHARED) if (h.has(name)) return undefined;
  return [ctx.route.name, ctx.host, ctx.path, ctx.query, h.get("accept") ?? "", h.get("accept-encoding") ?? "", h.get("accept-language") ?? ""].join("\n");
}

export interface Leader {
  share(response: Response): Response;
  abandon(): void;
}

/**
 * Joins `key` synchronously (so that concurrent arrivals see each other): the first becomes the
 * leader; the others get a promise of the leader's answer, streamed to them as it arrives
 * (undefined: go upstream yourself).
 */
export function join(key: string, config: CoalesceConfig): { leader: Leader } | { follower: Promise<Response | undefined> } {
  const current = inflight.get(key);
  if (current === undefined) return { leader: lead(key, config) };
  metrics.collapsedWaiters.inc(["coalesce"]);
  return { follower: follow(current, config) };
}

async function follow(lead: Promise<Broadcast | undefined>, config: CoalesceConfig): Promise<Response | undefined> {
  let timer: Timer | undefined;
  const shared = await Promise.race([lead, new Promise<undefined>((r) => (timer = setTimeout(r, config.wait)))]);
  clearTimeout(timer);
  return shared?.response({ "x-coalesced": "true" });
}

/** Makes this request the leader of `key`. Answers are shared when their declared length fits max_body. */
function lead(key: string, config: CoalesceConfig): Leader {
  let resolve!: (s: Broadcast | undefined) => void;
  const promise = new Promise<Broadcast | undefined>((r) => (resolve = r));
  inflight.set(key, promise);
  let settled = false;
  const settle = (b: Broadcast | undefined) => {
    if (settled) return;
    settled = true;
    resolve(b);
  };
  const done = () => {
    if (inflight.get(key) === promise) inflight.delete(key); // a later leader may have taken over
  };
  return {
    abandon: () => {
      settle(undefined);
      done();
    },
    share(response) {
      const length = Number(response.headers.get("content-length") ?? Number.NaN);
      const vary = (response.headers.get("vary") ?? "").split(",").map((v) => v.trim().toLowerCase()).filter(Boolean);
      const cc = response.headers.get("cache-control") ?? "";
      // Only a plain 200 meant for anyone, varying on keyed headers at most, with a body of known,
      // bounded length (every chunk is kept for late joiners).
      const shareable = response.status === 200 && !response.headers.has("set-cookie") && !/(^|,)\s*private\b/i.test(cc) && vary.every((v) => KEYED.has(v)) && length <= config.max_body;
      if (!shareable) {
        settle(undefined);
        done();
        return response;
      }
      // A snapshot: the leader's own response headers are changed in place on their way out.
      const broadcast = new Broadcast(response.status, response.statusText, new Headers(response.headers));
      const own = response.body === null ? null : broadcastBody(response.body, broadcast, config.max_body);
      if (response.body === null) broadcast.end();
      settle(broadcast); // followers start reading now, while the body arrives
      void broadcast.ended.then(done); // …and may join until it has
      return new Response(own, { status: response.status, statusText: response.statusText, headers: response.headers });
    },
  };
}
