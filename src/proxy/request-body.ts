/** Reading a request body whole (kept for retries, idempotency, transcoding): bounded by the route's time. */
import type { MatchedContext } from "./context.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { clientAborted } from "./outcome.ts";

/** The smaller of two limits where 0 means none. */
export function shortest(a: number, b: number): number {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return Math.min(a, b);
}

/**
 * Reads the request body whole when its declared length is within `max` (and it arrives within
 * the route's idle/request time): the bytes, an error to answer with, or undefined when it is too
 * large (or of unknown length) to keep.
 */
export async function keepBody(ctx: MatchedContext, max: number): Promise<ArrayBuffer | SwitchyardError | undefined> {
  const declared = Number(ctx.request.headers.get("content-length") ?? Number.NaN);
  if (!(declared <= max)) return undefined;
  return readWithinRouteTime(ctx, () => ctx.request.arrayBuffer());
}

/**
 * Runs `read` (a read of ctx.request's body) unless the client takes longer than the route's idle
 * or request timeout (408), or leaves (499). The body bytes are counted as the request's bytes in.
 */
export async function readWithinRouteTime<T extends ArrayBuffer | Uint8Array | undefined>(ctx: MatchedContext, read: () => Promise<T>): Promise<T | SwitchyardError> {
  const { idle, request } = ctx.route.config.timeouts;
  const ms = shortest(idle, request);
  let timer: Timer | undefined;
  const late = new Promise<SwitchyardError>((resolve) => {
    if (ms > 0) timer = setTimeout(() => resolve(errors.clientTimeout()), ms);
  });
  try {
    const bytes = await Promise.race([read(), late]);
    if (bytes !== undefined && !(bytes instanceof SwitchyardError)) ctx.bytesIn = bytes.byteLength;
    return bytes;
  } catch {
    return clientAborted();
  } finally {
    clearTimeout(timer);
  }
}
