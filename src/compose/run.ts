/**
 * A composition's fan-out: every call starts as soon as the calls it reads have settled (all at
 * once when none does), each a sub-request with its cluster's policies. A required call that
 * fails cancels the others; an optional one leaves null.
 */
import type { ProxyContext } from "../proxy/context.ts";
import { SwitchyardError } from "../util/errors.ts";
import { endSubrequest, hasDotSegment, sendSubrequest, subrequest } from "../proxy/subrequest.ts";
import { INVALID_JSON, MAX_DEPTH, parseJson, TOO_DEEP, toJsonBytes } from "../util/json.ts";
import { readBounded } from "../util/read-bounded.ts";
import type { ComposeCall, ComposePlan } from "./plan.ts";
import type { Filled, Scope } from "./template.ts";

export type CallResult = { ok: true; value: unknown } | { ok: false; error: SwitchyardError };

export interface FanOut {
  readonly results: ReadonlyMap<string, CallResult>;
  /** The required call that failed first (the others were cancelled for it), if one did. */
  readonly failed?: { call: string; error: SwitchyardError };
}

const callError = (code: string, message: string, status = 502) => new SwitchyardError({ code, status, source: "upstream", message });

/**
 * The error of a call whose template could not be filled: a value absent (or not a string or
 * number), or refused — the client's fault when it came from the request, else an answer's.
 */
function unfilled(call: ComposeCall, filled: Exclude<Filled, string>): SwitchyardError {
  const e = "missing" in filled ? filled.missing : filled.refused;
  const refused = "refused" in filled ? "has with a character a header cannot hold" : undefined;
  if (e.source === "calls") return callError("compose_missing_value", `call ${call.name} needs \${${e.text}}, which the answer of ${e.name} ${refused ?? "does not have as a string or number"}`);
  return new SwitchyardError({ code: "bad_request", status: 400, source: "client", message: `call ${call.name} needs \${${e.text}}, which the request ${refused ?? "does not have"}` });
}

function callHeaders(ctx: ProxyContext, plan: ComposePlan, call: ComposeCall, scope: Scope): Headers | SwitchyardError {
  const headers = new Headers();
  for (const name of plan.forwardHeaders) {
    const value = ctx.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  headers.set("accept", "application/json");
  headers.set("accept-encoding", "identity"); // answers are parsed here
  for (const [name, template] of call.headers) {
    const value = template(scope);
    if (typeof value !== "string") return unfilled(call, value);
    headers.set(name, value);
  }
  return headers;
}

/** One call: built from its templates, sent through the cluster's policies, its answer read (bounded) and parsed. */
async function runCall(ctx: ProxyContext, plan: ComposePlan, call: ComposeCall, scope: Scope, signal: AbortSignal): Promise<CallResult> {
  if (signal.aborted) return { ok: false, error: signal.reason as SwitchyardError };
  const target = call.target(scope);
  if (typeof target !== "string") return { ok: false, error: unfilled(call, target) };
  if (hasDotSegment(target)) return { ok: false, error: new SwitchyardError({ code: "bad_request", status: 400, source: "client", message: `a value in the path of call ${call.name} makes a . or .. segment` }) };
  const headers = callHeaders(ctx, plan, call, scope);
  if (headers instanceof SwitchyardError) return { ok: false, error: headers };
  let body: ArrayBuffer | undefined;
  if (call.body !== undefined) {
    body = toJsonBytes(call.body(scope)).buffer as ArrayBuffer;
    headers.set("content-type", "application/json");
  }
  const child = subrequest(ctx, { call: call.name, route: call.route, method: call.method, target, headers, signal });
  const sent = await sendSubrequest(child, body);
  if (!sent.ok) {
    endSubrequest(ctx, child, call.name, { error: sent.error });
    return { ok: false, error: sent.error };
  }
  const { response, deadlines } = sent;
  const settle = (error?: SwitchyardError) => {
    deadlines.clear();
    endSubrequest(ctx, child, call.name, { status: response.status, error });
  };
  const failWith = (error: SwitchyardError): CallResult => {
    response.body?.cancel().catch(() => {});
    settle(error);
    return { ok: false, error };
  };
  const tooLarge = () => callError("compose_call_too_large", `the answer of call ${call.name} is over ${call.maxBody} bytes`);
  if (response.status < 200 || response.status > 299) return failWith(callError("compose_call_status", `call ${call.name} answered ${response.status}`));
  const coding = response.headers.get("content-encoding");
  if (coding !== null && coding.toLowerCase() !== "identity") return failWith(callError("compose_call_invalid", `the answer of call ${call.name} is encoded (${coding})`));
  if (response.body === null) {
    settle();
    return { ok: true, value: null };
  }
  if (Number(response.headers.get("content-length") ?? 0) > call.maxBody) return failWith(tooLarge());
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readBounded(response.body, call.maxBody);
  } catch (e) {
    return failWith(SwitchyardError.from(deadlines.signal.reason ?? e));
  }
  if (bytes === undefined) return failWith(tooLarge());
  child.bytesOut = bytes.byteLength;
  const value = bytes.byteLength === 0 ? null : parseJson(bytes);
  if (value === INVALID_JSON) return failWith(callError("compose_call_invalid", `the answer of call ${call.name} is not JSON`));
  if (value === TOO_DEEP) return failWith(callError("compose_call_invalid", `the answer of call ${call.name} nests deeper than ${MAX_DEPTH} levels`));
  settle();
  return { ok: true, value };
}

/**
 * Runs the plan's calls. `answers` is filled as they settle (null for failures), so templates of
 * later calls can read earlier answers. `cancel` aborts the calls still running: the caller's
 * reasons (client gone, route deadline) and a failed required call's.
 */
export async function fanOut(ctx: ProxyContext, plan: ComposePlan, scope: Scope, answers: Map<string, unknown>, cancel: AbortController): Promise<FanOut> {
  const results = new Map<string, CallResult>();
  const running = new Map<string, Promise<void>>();
  let failed: FanOut["failed"];
  const run = (call: ComposeCall): Promise<void> => {
    let started = running.get(call.name);
    if (started === undefined) {
      started = (async () => {
        await Promise.all(call.deps.map((d) => run(plan.byName.get(d)!)));
        const lost = call.deps.find((d) => !results.get(d)!.ok);
        const result: CallResult = lost !== undefined
          ? { ok: false, error: callError("compose_dependency_failed", `call ${call.name} needs the answer of ${lost}, which failed`) }
          : await runCall(ctx, plan, call, scope, cancel.signal);
        results.set(call.name, result);
        answers.set(call.name, result.ok ? result.value : null);
        if (!result.ok && !call.optional && failed === undefined && !cancel.signal.aborted) {
          failed = { call: call.name, error: result.error };
          cancel.abort(new SwitchyardError({ code: "compose_cancelled", status: 502, source: "internal", message: `cancelled: call ${call.name} failed` }));
        }
      })();
      running.set(call.name, started);
    }
    return started;
  };
  await Promise.all(plan.calls.map(run));
  return { results, failed };
}
