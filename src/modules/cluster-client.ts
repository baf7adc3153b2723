/**
 * The cluster client custom modules call through (`c.env.clusters.get("orders").fetch(path)`):
 * each call is a sub-request of the client request, so the cluster's policies apply and the call
 * is listed in the access log line. The answer's body streams; the call ends (its slots given
 * back) when the body has been read, cancelled, or its deadline passed.
 */
import type { ProxyContext, CompiledRoute } from "../proxy/context.ts";
import { BODY_CANCELLED, watchBody } from "../proxy/body.ts";
import { SwitchyardError } from "../util/errors.ts";
import { endSubrequest, hasDotSegment, sendSubrequest, subrequest } from "../proxy/subrequest.ts";
import type { ClusterClients, ClusterRequestInit } from "./types.ts";

/** Statuses whose response can carry no body (the Response constructor refuses one). */
const NULL_BODY = new Set([204, 205, 304]);

function bodyBytes(body: ClusterRequestInit["body"]): ArrayBuffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return new TextEncoder().encode(body).buffer as ArrayBuffer;
  if (body instanceof ArrayBuffer) return body;
  return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
}

/**
 * The clients for one request. `routes`: a sub-request route per cluster (built with the
 * module's route); `signal`: fires when the client leaves or the route's deadline passes.
 */
export function clusterClients(ctx: ProxyContext, module: string, routes: ReadonlyMap<string, CompiledRoute>, signal: AbortSignal): ClusterClients {
  return {
    get(name) {
      const route = routes.get(name);
      if (route === undefined) throw new Error(`unknown cluster "${name}" (clusters: ${[...routes.keys()].join(", ")})`);
      return { fetch: (path, init = {}) => callCluster(ctx, module, route, path, init, signal) };
    },
  };
}

async function callCluster(ctx: ProxyContext, call: string, base: CompiledRoute, path: string, init: ClusterRequestInit, signal: AbortSignal): Promise<Response> {
  if (!path.startsWith("/") || path.startsWith("//")) throw new TypeError(`a cluster path starts with a single / (got ${JSON.stringify(path)})`);
  if (hasDotSegment(path)) throw new TypeError(`a cluster path cannot have . or .. segments (got ${JSON.stringify(path)})`);
  const route = init.timeout === undefined ? base : { ...base, config: { ...base.config, timeouts: { ...base.config.timeouts, request: init.timeout } } };
  const child = subrequest(ctx, {
    call, route, method: (init.method ?? "GET").toUpperCase(), target: path, headers: new Headers(init.headers),
    signal: init.signal === undefined ? signal : AbortSignal.any([signal, init.signal]),
  });
  const sent = await sendSubrequest(child, bodyBytes(init.body));
  if (!sent.ok) {
    endSubrequest(ctx, child, call, { error: sent.error });
    throw sent.error;
  }
  const { response, deadlines } = sent;
  const finish = (error?: SwitchyardError) => {
    deadlines.clear();
    endSubrequest(ctx, child, call, { status: response.status, error });
  };
  const head = { status: response.status, statusText: response.statusText, headers: response.headers };
  if (response.body === null || NULL_BODY.has(response.status)) {
    response.body?.cancel().catch(() => {});
    finish();
    return new Response(null, head);
  }
  // A body nobody reads still ends with its deadline.
  deadlines.signal.addEventListener("abort", () => finish(SwitchyardError.from(deadlines.signal.reason)), { once: true });
  const body = watchBody(response.body, {
    onChunk(n) {
      child.bytesOut += n;
      deadlines.touch();
    },
    onEnd(error) {
      finish(error === undefined || error === BODY_CANCELLED ? undefined : SwitchyardError.from(deadlines.signal.reason ?? error));
    },
  });
  return new Response(body, head);
}
