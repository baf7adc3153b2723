/**
 * A route's `fly_replay` (Fly.io dynamic request routing): a request whose method belongs to
 * another region is answered at once with `fly-replay: region=<region>`, and Fly's proxy replays
 * it on a machine there (the way Fly apps send writes to the primary database's region). In that
 * region, off Fly.io (no FLY_REGION), or for a request that is already a replay (`fly-replay-src`,
 * so a region name Fly resolves differently cannot bounce a request back and forth), it is
 * proxied as usual. Fly replays bodies up to 1 MB (larger ones fail at Fly's proxy).
 */
import { metrics } from "../observe/metrics.ts";
import type { ProxyContext } from "../proxy/context.ts";
import { errorResponse, SwitchyardError } from "../util/errors.ts";
import { instance } from "./instance.ts";
import type { FlyReplayConfig } from "./schema.ts";

/** The fly-replay answer for this request, or undefined when it is served here. */
export function flyReplayAnswer(ctx: ProxyContext, config: FlyReplayConfig, region = instance.region): Response | undefined {
  if (region === undefined || region === config.region || !config.methods.includes(ctx.method)) return undefined;
  if (ctx.headers.has("fly-replay-src")) return undefined;
  metrics.flyReplays.inc([ctx.route?.name ?? ""]);
  // 409, as Fly's own libraries answer: the body is never seen by the client when Fly replays it.
  const error = new SwitchyardError({
    code: "fly_replay", status: 409, source: "client",
    message: `${ctx.method} requests on this route are served in region ${config.region}; this is ${region}`,
    headers: { "fly-replay": `region=${config.region}` },
  });
  return errorResponse(error, ctx.requestId);
}
