/**
 * Composition routes (issue 7): a route with `compose:` is answered here. Its calls fan out to
 * their clusters (src/compose/run.ts), then the template is filled with the answers. An optional
 * call that failed leaves null and marks the response `partial: true` (and
 * x-switchyard-partial); a required one fails the whole response with 502 naming it. The route's
 * request timeout bounds the whole composition; each call has its own.
 */
import { fanOut } from "./run.ts";
import type { ComposePlan } from "./plan.ts";
import type { Scope } from "./template.ts";
import type { MatchedContext, RouteHandler } from "../proxy/context.ts";
import { Deadlines } from "../proxy/deadlines.ts";
import { SwitchyardError } from "../util/errors.ts";
import { clientAborted, fail } from "../proxy/outcome.ts";
import { respond } from "../proxy/respond.ts";
import { handlerStop } from "../proxy/subrequest.ts";

export function composeRoute(plan: ComposePlan): RouteHandler {
  return async function compose(ctx: MatchedContext): Promise<Response> {
    const answers = new Map<string, unknown>();
    let query: URLSearchParams | undefined;
    const scope: Scope = {
      calls: answers,
      query: () => (query ??= new URLSearchParams(ctx.query)),
      headers: ctx.headers,
      claims: ctx.auth?.claims,
      params: plan.params(ctx.path),
    };
    const stop = handlerStop(ctx);
    let outcome: Awaited<ReturnType<typeof fanOut>>;
    try {
      outcome = await fanOut(ctx, plan, scope, answers, stop.controller);
    } finally {
      stop.done();
    }
    if (ctx.request.signal.aborted) return fail(ctx, clientAborted());
    if (outcome.failed !== undefined) {
      const { call, error } = outcome.failed;
      if (error.source === "client") return fail(ctx, error); // the request lacked what a call needs: 400
      return fail(ctx, new SwitchyardError({
        code: "compose_call_failed", status: 502, source: "upstream", cause: error,
        message: `call ${call} failed: ${error.code}: ${error.message}`,
      }));
    }
    const body = plan.template(scope) as Record<string, unknown>;
    const headers = new Headers({ "content-type": "application/json" });
    if (plan.calls.some((c) => !outcome.results.get(c.name)!.ok)) {
      body.partial = true;
      headers.set("x-switchyard-partial", "true");
    }
    return respond(ctx, new Response(JSON.stringify(body), { status: plan.status, headers }), new Deadlines(0, 0), true);
  };
}
