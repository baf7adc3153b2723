/**
 * Request coalescing for routes without a cache: identical concurrent GETs (same target and
 * content-negotiation headers, no credentials) make one upstream request; the others get a copy of
 * its answer once it is complete, or go upstream themselves when the answer is too large, carries
 * a Set-Cookie, or fails. In-process only: across workers it takes the cache's lease rows.
 */
import { z } from "zod";
import { DurationSchema, SizeSchema } from "../config/primitives.ts";
import type { ProxyContext } from "../proxy/context.ts";

export const CoalesceSchema = z.strictObject({
  /** Answers up to this size are shared; larger ones are not (followers go upstream). Default 1MiB. */
  max_body: SizeSchema.prefault("1MiB"),
  /** How long followers wait for the leader's answer. Default 5s. */
  wait: DurationSchema.prefault("5s"),
});

export type CoalesceConfig = z.infer<typeof CoalesceSchema>;

interface Shared {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array;
}

const inflight = new Map<string, Promise<Shared | undefined>>();

/** The coalescing key, or undefined when this request must not share (not a GET, or it carries credentials). */
export function coalesceKey(ctx: ProxyContext): string | undefined {
  if (ctx.method !== "GET") return undefined;
  const h = ctx.headers;
  if (h.has("authorization") || h.has("cookie")) return undefined;
  return [ctx.route!.name, ctx.host, ctx.path, ctx.query, h.get("accept") ?? "", h.get("accept-encoding") ?? "", h.get("accept-language") ?? ""].join("\n");
}

/**
 * Joins `key` synchronously (so that concurrent arrivals see each other): the first becomes the
 * leader; the others get a promise of a copy of its answer (undefined: go upstream yourself).
 */
export function join(key: string, config: CoalesceConfig): { leader: Leader } | { follower: Promise<Response | undefined> } {
  const current = inflight.get(key);
  return current === undefined ? { leader: lead(key, config) } : { follower: follow(current, config) };
}

export interface Leader {
  share(response: Response): Response;
  abandon(): void;
}

async function follow(lead: Promise<Shared | undefined>, config: CoalesceConfig): Promise<Response | undefined> {
  let timer: Timer | undefined;
  const shared = await Promise.race([lead, new Promise<undefined>((r) => (timer = setTimeout(r, config.wait)))]);
  clearTimeout(timer);
  if (shared === undefined) return undefined;
  const headers = new Headers(shared.headers);
  headers.set("x-coalesced", "true");
  return new Response(shared.body.byteLength === 0 ? null : shared.body, { status: shared.status, statusText: shared.statusText, headers });
}

/** Makes this request the leader of `key`; returns what shares its answer, and what gives up. */
function lead(key: string, config: CoalesceConfig): Leader {
  let resolve!: (s: Shared | undefined) => void;
  const promise = new Promise<Shared | undefined>((r) => (resolve = r));
  inflight.set(key, promise);
  let settled = false;
  const settle = (s: Shared | undefined) => {
    if (settled) return;
    settled = true;
    if (inflight.get(key) === promise) inflight.delete(key); // a later leader may have taken over
    resolve(s);
  };
  let sharing = false;
  return {
    // After share(), the collector settles (the client may finish reading before it does).
    abandon: () => {
      if (!sharing) settle(undefined);
    },
    share(response) {
      sharing = true;
      const length = Number(response.headers.get("content-length") ?? Number.NaN);
      if (response.headers.has("set-cookie") || length > config.max_body || response.body === null) {
        settle(response.body === null && !response.headers.has("set-cookie") ? { status: response.status, statusText: response.statusText, headers: [...response.headers], body: new Uint8Array(0) } : undefined);
        return response;
      }
      const [toClient, toShare] = response.body.tee();
      void (async () => {
        const parts: Uint8Array[] = [];
        let size = 0;
        for await (const chunk of toShare) {
          size += chunk.byteLength;
          if (size > config.max_body) return settle(undefined);
          parts.push(chunk);
        }
        settle({ status: response.status, statusText: response.statusText, headers: [...response.headers], body: Buffer.concat(parts) });
      })().catch(() => settle(undefined));
      return new Response(toClient, { status: response.status, statusText: response.statusText, headers: response.headers });
    },
  };
}
