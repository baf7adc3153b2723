/**
 * Hedged requests: when a try has not answered within `hedge_after`, a second try goes to another
 * endpoint and the first good answer wins; the other is cancelled and its resources given back.
 * A hedge counts as a retry (attempts, budget, max_retries) and needs a free connection slot: it
 * never queues.
 */
import { metrics } from "../observe/metrics.ts";
import type { ClientSpan } from "../observe/tracing.ts";
import type { Endpoint } from "../upstream/cluster.ts";
import type { RoutedContext } from "./context.ts";
import { Deadlines } from "./deadlines.ts";
import { SwitchyardError } from "../util/errors.ts";
import { forward } from "./forward.ts";
import { retriesStatus } from "./retry.ts";
import type { RetryPolicy } from "./retry-schema.ts";

/** A try's client span (when the request is traced) rides along with its outcome. */
export type TryOutcome =
  | { ok: true; response: Response; endpoint: Endpoint; deadlines: Deadlines; startedAt: number; span: ClientSpan | undefined }
  | { ok: false; error: SwitchyardError; endpoint: Endpoint; deadlines: Deadlines; startedAt: number; span: ClientSpan | undefined };

/** The client span of a try about to start (its resend count: the tries before it). */
function trySpan(ctx: RoutedContext, endpoint: Endpoint): ClientSpan | undefined {
  return ctx.span === undefined ? undefined : ctx.span.startClient(endpoint, ctx.method, ctx.attempt - 1);
}

/** One try, its failure caught as data. */
export async function tryOnce(ctx: RoutedContext, endpoint: Endpoint, deadlines: Deadlines, body: ArrayBuffer | undefined, span = trySpan(ctx, endpoint)): Promise<TryOutcome> {
  const startedAt = performance.now();
  try {
    const response = await forward(ctx, endpoint, deadlines, body, span?.traceparent);
    return { ok: true, response, endpoint, deadlines, startedAt, span };
  } catch (e) {
    return { ok: false, error: SwitchyardError.from(e), endpoint, deadlines, startedAt, span };
  }
}

const hedgeLost = () => new SwitchyardError({ code: "hedge_cancelled", status: 499, source: "internal", message: "another try answered first" });

interface Running {
  readonly endpoint: Endpoint;
  readonly deadlines: Deadlines;
  readonly startedAt: number;
  readonly span: ClientSpan | undefined;
  /** Resolves with this same record once `outcome` is set. */
  readonly done: Promise<Running>;
  outcome?: TryOutcome;
}

function start(ctx: RoutedContext, endpoint: Endpoint, deadlines: Deadlines, body: ArrayBuffer | undefined): Running {
  const run = { endpoint, deadlines, startedAt: performance.now(), span: trySpan(ctx, endpoint) } as Running & { done: Promise<Running> };
  (run as { done: Promise<Running> }).done = tryOnce(ctx, endpoint, deadlines, body, run.span).then((o) => {
    run.outcome = o;
    return run;
  });
  return run;
}

/** What the pipeline is told about the try that lost: its outcome, or that it was cancelled. */
export type LostTry = TryOutcome | { endpoint: Endpoint; startedAt: number; span: ClientSpan | undefined; cancelled: true };

/**
 * Runs the try on `endpoint`, hedged after `policy.hedge_after`; `onLoser` hears of the try that
 * lost. The returned outcome's endpoint is the request's from then on (ctx.endpoint).
 */
export async function tryHedged(
  ctx: RoutedContext, policy: RetryPolicy, endpoint: Endpoint, deadlines: Deadlines, body: ArrayBuffer | undefined,
  newDeadlines: () => Deadlines, onLoser: (loser: LostTry) => void,
): Promise<TryOutcome> {
  const a = start(ctx, endpoint, deadlines, body);
  let timer: Timer | undefined;
  const early = await Promise.race([a.done, new Promise<undefined>((resolve) => (timer = setTimeout(resolve, policy.hedge_after)))]);
  clearTimeout(timer);
  if (early !== undefined) return early.outcome!;

  const cluster = ctx.cluster;
  const { limits, budget } = cluster;
  const allowed = ctx.attempt < policy.attempts && budget.allows() && budget.retrying < limits.config.max_retries;
  const other = allowed ? cluster.pick(ctx, ctx.triedEndpoints) : undefined;
  // A hedge needs a free connection slot: it never queues.
  if (other === undefined || !limits.tryAcquireConnection()) return (await a.done).outcome!;
  budget.retrying++;
  metrics.retries.inc([cluster.name]);
  other.active++;
  ctx.triedEndpoints.add(other);
  ctx.attempt++;
  const b = start(ctx, other, newDeadlines(), body);

  const good = (o: TryOutcome) => o.ok && !retriesStatus(policy, o.response.status);
  const decisive = (o: TryOutcome) => good(o) || (!o.ok && o.error.source === "client");
  const first = await Promise.race([a.done, b.done]);
  const second = first === a ? b : a;
  let winner: Running;
  if (decisive(first.outcome!)) winner = first;
  else {
    await second.done;
    // The later one wins if it is good, or if the first one failed outright.
    winner = good(second.outcome!) || !first.outcome!.ok ? second : first;
  }
  const loser = winner === a ? b : a;
  if (loser.outcome === undefined) {
    loser.deadlines.fail(hedgeLost()); // aborts its fetch
    void loser.done.then((late) => {
      if (late.outcome!.ok) late.outcome!.response.body?.cancel().catch(() => {});
    });
    onLoser({ endpoint: loser.endpoint, startedAt: loser.startedAt, span: loser.span, cancelled: true });
  } else {
    if (loser.outcome.ok) loser.outcome.response.body?.cancel().catch(() => {});
    loser.deadlines.clear();
    onLoser(loser.outcome);
  }
  // Give back what the losing try held; the request keeps the winner's endpoint and one slot.
  budget.retrying--;
  limits.releaseConnection();
  loser.endpoint.active--;
  ctx.endpoint = winner.endpoint;
  return winner.outcome!;
}
