/**
 * Custom route modules: a route with `module:` is answered by the module's Hono app, after the
 * route's request filters (auth, rate limits…) and before its response phase (header rules,
 * transform, compression) and log — the same phases every route has. The module sees the path
 * without the route's prefix, `c.env` (ModuleBindings) with the request id, the caller's
 * identity and the cluster client. What it throws is logged and answered 500 (a failed cluster
 * call it does not catch: that call's error, e.g. 502); the route's request timeout bounds it.
 */
import { Hono } from "hono";
import { clusterClients } from "./cluster-client.ts";
import type { ModuleApp, ModuleBindings, ModuleEnv } from "./types.ts";
import type { MatchedContext, CompiledRoute, RouteHandler } from "../proxy/context.ts";
import { Deadlines } from "../proxy/deadlines.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { fail } from "../proxy/outcome.ts";
import { respond } from "../proxy/respond.ts";
import { handlerStop } from "../proxy/subrequest.ts";

export interface ModuleRouteOptions {
  readonly module: string;
  readonly app: ModuleApp;
  /** A sub-request route per cluster, for the cluster client. */
  readonly clusters: ReadonlyMap<string, CompiledRoute>;
  /** The path the module sees for a request's path. */
  readonly path: (path: string) => string;
}

const moduleError = (module: string) =>
  new SwitchyardError({ code: "module_error", status: 500, source: "internal", message: `the route module ${module} failed on this request` });

export function moduleRoute(options: ModuleRouteOptions): RouteHandler {
  const { module } = options;
  // The user's app mounted in one of ours, whose error handler hands every throw to the route.
  const app = new Hono<ModuleEnv>();
  app.onError((error) => {
    throw error;
  });
  app.notFound(() => {
    throw errors.noRoute();
  });
  app.route("/", options.app);

  return async function moduleHandler(ctx: MatchedContext): Promise<Response> {
    const stop = handlerStop(ctx);
    const { signal } = stop.controller;
    const stopped = new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    stopped.catch(() => {});

    const headers = new Headers(ctx.request.headers);
    if (ctx.requestBody !== undefined) headers.delete("content-length"); // a filter rewrote the body
    const query = ctx.route.rewriteQuery ? ctx.route.rewriteQuery(ctx.query) : ctx.query;
    const request = new Request(`http://${ctx.host || "localhost"}${options.path(ctx.path)}${query === "" ? "" : `?${query}`}`, {
      method: ctx.method, headers, body: ctx.requestBody ?? ctx.request.body, signal, duplex: "half",
    } as RequestInit);
    const bindings: ModuleBindings = {
      requestId: ctx.requestId, clientIp: ctx.clientIp, auth: ctx.auth,
      clusters: clusterClients(ctx, module, options.clusters, signal),
    };
    let response: Response;
    try {
      response = await Promise.race([Promise.resolve().then(() => app.fetch(request, bindings)), stopped]);
    } catch (e) {
      if (e instanceof SwitchyardError) return fail(ctx, e); // a cluster call's failure, a timeout, no route, the client gone
      console.error(JSON.stringify({
        time: new Date().toISOString(), level: "error", msg: "route module threw", module, route: ctx.route.name, request_id: ctx.requestId,
        error: e instanceof Error ? `${e.name}: ${e.message}` : String(e), stack: e instanceof Error ? e.stack : undefined,
      }));
      return fail(ctx, moduleError(module));
    } finally {
      stop.done();
    }
    return respond(ctx, response, new Deadlines(0, 0));
  };
}
