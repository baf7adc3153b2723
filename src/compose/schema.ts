import { z } from "zod";
import { DurationSchema, SizeSchema, TokenSchema } from "../config/primitives.ts";
import { RetryPolicySchema } from "../proxy/retry-schema.ts";
import { type Expression, expressionsIn, expressionsInJson } from "./template.ts";

const CALL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const ComposeCallSchema = z.strictObject({
  /** The cluster called (its balancer, health, breaker, limits apply). */
  cluster: z.string().min(1),
  /** Default GET. */
  method: z.enum(["GET", "POST", "PUT", "PATCH", "DELETE"]).default("GET"),
  /**
   * Path and query sent, with `${…}` values URL-encoded (`/orders?user=${calls.user.id}`): a value
   * cannot add a segment, a query parameter or a fragment, and one that would make a `.`/`..`
   * segment fails the call.
   */
  path: z.string().startsWith("/", "must start with /"),
  /** Headers set on the call (values may hold `${…}`; control characters fail the call). */
  headers: z.record(TokenSchema, z.string()).optional(),
  /** A JSON body (a template like the response's), sent as application/json. Not for GET/DELETE. */
  body: z.json().optional(),
  /** The call's own deadline, all tries and its body included. Default 5s. */
  timeout: DurationSchema.prefault("5s").refine((ms) => ms > 0, "must be more than 0"),
  /** An optional call that fails leaves null (and `partial: true`); a required one fails the response (502). Default false. */
  optional: z.boolean().default(false),
  /** Retries for this call; default: the route's `retry`. */
  retry: RetryPolicySchema.optional(),
  /** A larger answer fails the call. Default 1MiB. */
  max_body: SizeSchema.prefault("1MiB"),
  /** Host header for the call; default the endpoint's host:port. */
  host: z.string().min(1).optional(),
});

/**
 * A composition route: calls run in parallel (a call that reads another's answer runs after it),
 * then the template is filled with their JSON answers. Answers must be 2xx JSON.
 */
export const ComposeSchema = z
  .strictObject({
    calls: z.record(z.string().regex(CALL_NAME, "call names are letters, digits and _ (not starting with a digit)"), ComposeCallSchema)
      .refine((calls) => Object.keys(calls).length > 0, "give at least one call"),
    /** The response body: a JSON object whose strings may hold `${…}` (see README). `partial` is the gateway's. */
    template: z.record(z.string(), z.json()).refine((t) => !("partial" in t), "partial is set by the gateway (true when an optional call failed)"),
    /** HTTP status of the composed response. Default 200. */
    status: z.number().int().min(200).max(299).default(200),
    /** Client headers passed on to every call. Default authorization, cookie, accept-language, user-agent. */
    forward_headers: z.array(TokenSchema).default(["authorization", "cookie", "accept-language", "user-agent"]),
  })
  .superRefine((compose, ctx) => {
    const names = Object.keys(compose.calls ?? {});
    const deps = new Map<string, string[]>();
    const check = (found: Expression[] | string, path: (string | number)[]): Expression[] => {
      if (typeof found === "string") {
        ctx.addIssue({ code: "custom", path, message: found });
        return [];
      }
      for (const e of found) {
        if (e.source === "calls" && !names.includes(e.name)) ctx.addIssue({ code: "custom", path, message: `\${${e.text}}: unknown call "${e.name}" (calls: ${names.join(", ")})` });
      }
      return found;
    };
    for (const [name, call] of Object.entries(compose.calls ?? {})) {
      const used = [
        ...check(expressionsIn(call.path), ["calls", name, "path"]),
        ...Object.entries(call.headers ?? {}).flatMap(([h, v]) => check(expressionsIn(v), ["calls", name, "headers", h])),
        ...(call.body === undefined ? [] : check(expressionsInJson(call.body), ["calls", name, "body"])),
      ];
      deps.set(name, [...new Set(used.filter((e) => e.source === "calls" && names.includes(e.name)).map((e) => e.name))]);
      if (call.body !== undefined && (call.method === "GET" || call.method === "DELETE")) ctx.addIssue({ code: "custom", path: ["calls", name, "body"], message: `a ${call.method} call has no body` });
    }
    check(expressionsInJson(compose.template), ["template"]);
    for (const [name, needs] of deps) {
      for (const dep of needs) {
        if (!compose.calls[name]!.optional && compose.calls[dep]!.optional) {
          ctx.addIssue({ code: "custom", path: ["calls", name], message: `a required call cannot depend on the optional call "${dep}"` });
        }
      }
    }
    const cycle = findCycle(deps);
    if (cycle !== undefined) ctx.addIssue({ code: "custom", path: ["calls", cycle[0]!], message: `calls depend on each other in a cycle: ${cycle.join(" → ")}` });
  });

/** A dependency cycle as the names along it (first repeated at the end), or undefined. */
function findCycle(deps: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === "done") return undefined;
    if (state.get(name) === "open") return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, "open");
    stack.push(name);
    for (const dep of deps.get(name) ?? []) {
      const found = visit(dep);
      if (found !== undefined) return found;
    }
    stack.pop();
    state.set(name, "done");
    return undefined;
  };
  for (const name of deps.keys()) {
    const found = visit(name);
    if (found !== undefined) return found;
  }
  return undefined;
}

export type ComposeConfig = z.infer<typeof ComposeSchema>;
export type ComposeCallConfig = z.infer<typeof ComposeCallSchema>;
