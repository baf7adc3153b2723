/**
 * Phases 4 and 5 for one request context — load shedding, then select → forward, again while
 * the retry policy allows — shared by the pipeline and by sub-requests (composition calls,
 * custom modules' cluster client), so that every upstream call gets the same balancer, health,
 * breaker, limits, retries and timeouts.
 */
import { metrics } from "../observe/metrics.ts";
import type { ClientSpan } from "../observe/tracing.ts";
import type { Endpoint } from "../upstream/cluster.ts";
import type { ProxyContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { errors, SwitchyardError } from "./errors.ts";
import { type TryOutcome, tryHedged, tryOnce } from "./hedge.ts";
import { clientAborted, releaseConnection, releaseRetry } from "./outcome.ts";
import { shortest } from "./request-body.ts";
import { backoffDelay, type RetryPolicy, retriesError, retriesStatus, retryAfterMs } from "./retry.ts";

export type Exchanged =
  | { ok: true; response: Response; deadlines: Deadlines }
  /** `stale`: a failure on the upstream's side, for which a stale cached copy may stand in. */
  | { ok: false; error: SwitchyardError; stale: boolean };

/**
 * Load shedding before any work: the breaker, then the cluster's request limit (what is admitted
 * is given back by the log phase). An error means: do not send.
 */
export function admit(ctx: ProxyContext): SwitchyardError | undefined {
  const cluster = ctx.cluster!;
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
export async function exchange(ctx: ProxyContext, body: ArrayBuffer | undefined, retries: boolean, followClient: boolean): Promise<Exchanged> {
  const cluster = ctx.cluster!;
  const route = ctx.route!;
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
    const perTry = retries ? policy!.per_try_timeout : 0;
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
    releaseRetry(ctx);
    noteTry(ctx, outcome);
    if (!outcome.ok) {
      deadlines.clear();
      const error = outcome.error;
      if (retries && retriesError(policy!, error) && (await mayRetry(ctx, policy!, undefined))) continue;
      return { ok: false, error, stale: error.source === "upstream" };
    }
    const upstream = outcome.response;
    if (retries && retriesStatus(policy!, upstream.status)) {
      const wait = upstream.status === 429 || upstream.status === 503 ? retryAfterMs(upstream.headers.get("retry-after")) : undefined;
      if ((wait === undefined || wait <= policy!.retry_after_max) && (await mayRetry(ctx, policy!, wait, upstream, deadlines))) continue;
    }
    // The per-try limit no longer applies; the route's own deadline covers the body.
    if (perTry > 0) deadlines.restartRequestTimer(route.config.timeouts.request > 0 ? Math.max(1, timeLeft(ctx)) : 0);
    return { ok: true, response: upstream, deadlines };
  }
}

/** Why the request's signal fired: the client left, or (a sub-request) the reason its parent gave. */
function abortError(signal: AbortSignal): SwitchyardError {
  return signal.reason instanceof SwitchyardError ? signal.reason : clientAborted();
}

/** 4 select: an endpoint not yet tried by this request (any, once all have been), counted as busy. */
export function select(ctx: ProxyContext): Endpoint | undefined {
  const cluster = ctx.cluster!;
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
async function mayRetry(ctx: ProxyContext, policy: RetryPolicy, wait: number | undefined, upstream?: Response, deadlines?: Deadlines): Promise<boolean> {
  const cluster = ctx.cluster!;
  if (ctx.attempt >= policy.attempts || !cluster.budget.allows() || cluster.budget.retrying >= cluster.limits.config.max_retries) return false;
  const delay = wait ?? backoffDelay(policy, ctx.attempt);
  if (ctx.route!.config.timeouts.request > 0 && timeLeft(ctx) <= delay) return false;
  upstream?.body?.cancel().catch(() => {});
  deadlines?.clear();
  ctx.span?.endClients();
  ctx.endpoint!.active--;
  ctx.endpoint = undefined;
  releaseConnection(ctx);
  // Taken now, not when the retry is sent, so that retries waiting out their backoff count too;
  // given back when the retry's answer (or failure) is in, or by the log phase.
  cluster.budget.retrying++;
  ctx.retryHeld = true;
  metrics.retries.inc([cluster.name]);
  if (delay > 0) await Bun.sleep(delay);
  return true;
}

/** Records a settled try in the request's log entry and reports it to outlier detection. */
function noteTry(ctx: ProxyContext, o: TryOutcome): void {
  if (o.ok) {
    recordTry(ctx, o.endpoint, o.startedAt, o.response.status, undefined, o.span);
    ctx.cluster!.report(o.endpoint, { status: o.response.status });
  } else {
    recordTry(ctx, o.endpoint, o.startedAt, undefined, o.error.code, o.span);
    if (o.error.source === "upstream") ctx.cluster!.report(o.endpoint, { gatewayFailure: true }, o.error);
  }
}

/** A try's client span ends here when it failed; one with an answer stays open until its body is done with. */
function recordTry(ctx: ProxyContext, endpoint: Endpoint, startedAt: number, status: number | undefined, error: string | undefined, span: ClientSpan | undefined): void {
  (ctx.tries ??= []).push({ endpoint: endpoint.address, status: status ?? null, error: error ?? null, ms: Math.round((performance.now() - startedAt) * 100) / 100 });
  if (span === undefined) return;
  span.settle(status, error);
  if (error !== undefined) span.end();
}

/**
 * Milliseconds left of the route's request timeout: negative once it has passed; 0 when the
 * route has none (which callers read as "no limit").
 */
export function timeLeft(ctx: ProxyContext): number {
  const timeout = ctx.route!.config.timeouts.request;
  if (timeout <= 0) return 0;
  const left = timeout - (performance.now() - ctx.startedAt);
  return left > 0 ? left : -1;
}
