/**
 * Phases 4 and 5 for one request context — load shedding, then select → forward, again while
 * the retry policy allows — shared by the pipeline and by sub-requests (composition calls,
 * custom modules' cluster client), so that every upstream call gets the same balancer, health,
 * breaker, limits, retries and timeouts.
 */
import { metrics } from "../observe/metrics.ts";
import type { ClientSpan } from "../observe/tracing.ts";
import type { Endpoint } from "../upstream/cluster.ts";
import type { RoutedContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { type TryOutcome, tryHedged, tryOnce } from "./hedge.ts";
import { clientAborted, releaseConnection, releaseRetry, reportDeferred } from "./outcome.ts";
import { shortest } from "./request-body.ts";
import { bodyReadError, bufferedLength } from "./respond.ts";
import { backoffDelay, retriesError, retriesStatus } from "./retry.ts";
import type { RetryPolicy } from "./retry-schema.ts";
import { retryAfterMs } from "../util/retry-after.ts";

export type Exchanged =
  | { ok: true; response: Response; deadlines: Deadlines }
  /** `stale`: a failure on the upstream's side, for which a stale cached copy may stand in. */
  | { ok: false; error: SwitchyardError; stale: boolean };

/**
 * Load shedding before any work: the breaker, then the cluster's request limit (what is admitted
 * is given back by the log phase). An error means: do not send.
 */
export function admit(ctx: RoutedContext): SwitchyardError | undefined {
  const cluster = ctx.cluster;
  if (cluster.breaker !== undefined) {
    const admission = cluster.breaker.admit();
    if (admission === "no") return errors.circuitOpen(cluster.name);
    ctx.breakerAdmission = admission;
  }
  if (!cluster.limits.admitRequest()) return errors.overloaded(cluster.name, "max_requests");
  ctx.limitAdmitted = true;
  return undefined;
}

/**
 * 4 select → 5 forward, again from 4 while `retries` (the route's policy applies) allows.
 * `body`: the kept request body (else the request's own streams once). `followClient`: a client
 * that leaves aborts the exchange (not under an Idempotency-Key claim, whose answer is awaited).
 */
export async function exchange(ctx: RoutedContext, body: ArrayBuffer | undefined, retries: boolean, followClient: boolean): Promise<Exchanged> {
  const cluster = ctx.cluster;
  const route = ctx.route;
  const policy = route.config.retry;
  let current: Deadlines | undefined;
  const signal = ctx.request.signal;
  if (followClient) signal.addEventListener("abort", () => current?.fail(abortError(signal)), { once: true });
  for (;;) {
    if (signal.aborted) return { ok: false, error: abortError(signal), stale: false };
    // Waiting for a slot counts against the route's time, and ends when the client leaves.
    let slot = cluster.limits.tryAcquireConnection() || cluster.limits.acquireConnection(() => {
      const left = timeLeft(ctx);
      return left > 0 ? AbortSignal.any([ctx.request.signal, AbortSignal.timeout(left)]) : ctx.request.signal;
    });
    if (slot !== true) slot = await slot;
    if (!slot) {
      return signal.aborted ? { ok: false, error: abortError(signal), stale: false } : { ok: false, error: errors.overloaded(cluster.name, "max_connections"), stale: true };
    }
    ctx.connectionHeld = true;
    const endpoint = select(ctx);
    if (endpoint === undefined) return { ok: false, error: errors.noEndpoint(cluster.name), stale: true };
    const remaining = timeLeft(ctx);
    if (remaining < 0) return { ok: false, error: errors.requestTimeout(), stale: false };
    // The deadlines span the whole exchange: created before the fetch, cleared when the body ends.
    // per_try_timeout bounds one try whether or not another may follow (a POST's only try too).
    const perTry = policy !== undefined ? policy.per_try_timeout : 0;
    const newDeadlines = () => new Deadlines(shortest(perTry, remaining), route.config.timeouts.idle, perTry > 0 && (remaining <= 0 || perTry < remaining));
    current = newDeadlines();
    const outcome = retries && policy!.hedge_after > 0
      ? await tryHedged(ctx, policy!, endpoint, current, body, newDeadlines, (lost) => {
          if ("cancelled" in lost) recordTry(ctx, lost.endpoint, lost.startedAt, undefined, "hedge_cancelled", lost.span);
          else noteTry(ctx, lost);
          lost.span?.end();
        })
      : await tryOnce(ctx, endpoint, current, body);
    const deadlines = (current = outcome.deadlines);
    releaseRetry(ctx, cluster);
    noteTry(ctx, outcome, true);
    if (!outcome.ok) {
      deadlines.clear();
      const error = outcome.error;
      if (retries && retriesError(policy!, error) && (await mayRetry(ctx, policy!, undefined))) continue;
      return { ok: false, error, stale: error.source === "upstream" };
    }
    let upstream = outcome.response;
    if (retries && retriesStatus(policy!, upstream.status)) {
      const wait = upstream.status === 429 || upstream.status === 503 ? retryAfterMs(upstream.headers.get("retry-after")) : undefined;
      if ((wait === undefined || wait <= policy!.retry_after_max) && (await mayRetry(ctx, policy!, wait, upstream, deadlines))) continue;
    }
    // An answer read whole before the client sees it (respond.ts) is read here when it could be
    // retried: a body the upstream cuts short is then a failed try like a reset before the head.
    if (retries && bufferedLength(ctx.method, upstream) !== undefined) {
      const whole = await readWhole(ctx, outcome, deadlines);
      if (whole instanceof SwitchyardError) {
        deadlines.clear();
        if (retriesError(policy!, whole) && (await mayRetry(ctx, policy!, undefined))) continue;
        return { ok: false, error: whole, stale: true };
      }
      upstream = whole;
    }
    // The per-try limit no longer applies; the route's own deadline covers the body.
    if (perTry > 0) deadlines.restartRequestTimer(ctx.deadline !== Number.POSITIVE_INFINITY ? Math.max(1, timeLeft(ctx)) : 0);
    return { ok: true, response: upstream, deadlines };
  }
}

/** Why the request's signal fired: the client left, or (a sub-request) the reason its parent gave. */
function abortError(signal: AbortSignal): SwitchyardError {
  return signal.reason instanceof SwitchyardError ? signal.reason : clientAborted();
}

/** 4 select: an endpoint not yet tried by this request (any, once all have been), counted as busy. */
export function select(ctx: RoutedContext): Endpoint | undefined {
  const cluster = ctx.cluster;
  const endpoint = cluster.pick(ctx, ctx.triedEndpoints) ?? cluster.pick(ctx);
  if (endpoint === undefined) return undefined;
  ctx.endpoint = endpoint;
  ctx.triedEndpoints.add(endpoint);
  ctx.attempt++;
  endpoint.active++; // released after a failed try, or by the log phase
  return endpoint;
}

/**
 * After a failed try: is another allowed (attempts left, the cluster's retry budget, time left)?
 * If so, lets go of the failed try (its body, its endpoint) and waits the backoff; true = retry.
 */
export async function mayRetry(ctx: RoutedContext, policy: RetryPolicy, wait: number | undefined, upstream?: Response, deadlines?: Deadlines): Promise<boolean> {
  const cluster = ctx.cluster;
  if (ctx.attempt >= policy.attempts || !cluster.budget.allows() || cluster.budget.retrying >= cluster.limits.config.max_retries) return false;
  // A retry that can go to an endpoint not tried yet goes at once, as nginx's proxy_next_upstream
  // and HAProxy's redispatch do: backing off protects an endpoint from its own retries, and
  // waiting here only kept retries in flight (against the budget) while the failed endpoint was
  // spared anyway. A Retry-After is still honoured.
  const delay = wait ?? (hasUntried(cluster, ctx.triedEndpoints) ? 0 : backoffDelay(policy, ctx.attempt));
  if (ctx.deadline !== Number.POSITIVE_INFINITY && timeLeft(ctx) <= delay) return false;
  upstream?.body?.cancel().catch(() => {});
  deadlines?.clear();
  ctx.span?.endClients();
  reportDeferred(ctx, cluster);
  ctx.endpoint!.active--;
  ctx.endpoint = undefined;
  releaseConnection(ctx, cluster);
  // Taken now, not when the retry is sent, so that retries waiting out their backoff count too;
  // given back when the retry's answer (or failure) is in, or by the log phase.
  cluster.budget.retrying++;
  ctx.retryHeld = true;
  metrics.retries.inc([cluster.name]);
  if (delay > 0) await Bun.sleep(delay);
  return true;
}

/**
 * Reads a try's answer whole (it is within BUFFERED_BODY_MAX): the same answer with its body in
 * memory, or the failure — reported to outlier detection and noted on the try — when the body
 * did not arrive whole.
 */
async function readWhole(ctx: RoutedContext, o: TryOutcome & { ok: true }, deadlines: Deadlines): Promise<Response | SwitchyardError> {
  const upstream = o.response;
  try {
    const bytes = await upstream.arrayBuffer();
    return new Response(bytes, { status: upstream.status, statusText: upstream.statusText, headers: upstream.headers });
  } catch (e) {
    const error = bodyReadError(deadlines, e, upstream.headers.get("content-length"));
    ctx.deferredReport = 0;
    if (error.source === "upstream") ctx.cluster.report(o.endpoint, { gatewayFailure: true }, error);
    const entry = ctx.tries?.[ctx.tries.length - 1];
    if (entry !== undefined) entry.error = error.code;
    o.span?.settle(upstream.status, error.code);
    o.span?.end();
    return error;
  }
}

/**
 * Records a settled try in the request's log entry and reports it to outlier detection. An
 * answer that is not a failure by its status is reported when its body has ended (`deferrable`:
 * the try whose answer may reach the client; the log phase reports it): a body the upstream cuts
 * short is a gateway failure, and its 200 head must not reset the endpoint's failure count first.
 */
function noteTry(ctx: RoutedContext, o: TryOutcome, deferrable = false): void {
  if (o.ok) {
    recordTry(ctx, o.endpoint, o.startedAt, o.response.status, undefined, o.span);
    if (deferrable && o.response.status < 500) ctx.deferredReport = o.response.status;
    else ctx.cluster.report(o.endpoint, { status: o.response.status });
  } else {
    recordTry(ctx, o.endpoint, o.startedAt, undefined, o.error.code, o.span);
    if (o.error.source === "upstream") ctx.cluster.report(o.endpoint, { gatewayFailure: true }, o.error);
  }
}

/** A try's client span ends here when it failed; one with an answer stays open until its body is done with. */
function recordTry(ctx: RoutedContext, endpoint: Endpoint, startedAt: number, status: number | undefined, error: string | undefined, span: ClientSpan | undefined): void {
  (ctx.tries ??= []).push({ endpoint: endpoint.address, status: status ?? null, error: error ?? null, ms: Math.round((performance.now() - startedAt) * 100) / 100 });
  if (span === undefined) return;
  span.settle(status, error);
  if (error !== undefined) span.end();
}

/**
 * Milliseconds left of the route's request timeout (ctx.deadline): negative once it has passed;
 * 0 when the route has none (which callers read as "no limit").
 */
export function timeLeft(ctx: RoutedContext): number {
  if (ctx.deadline === Number.POSITIVE_INFINITY) return 0;
  const left = ctx.deadline - performance.now();
  return left > 0 ? left : -1;
}

/** Is some endpoint the request may go to now not yet tried by it? (No allocation: runs per retry.) */
function hasUntried(cluster: RoutedContext["cluster"], tried: ReadonlySet<Endpoint>): boolean {
  for (const e of cluster.available()) if (!tried.has(e)) return true;
  return false;
}
