/**
 * Local limits with several workers (`workers: N`). The kernel spreads connections over the
 * workers (reusePort), so per-worker buckets would let a client that opens N connections through
 * N times its limit, and dividing the limit by N would hold a client on one keep-alive connection
 * to 1/N of it. Instead the supervisor keeps the machine's buckets: a worker sends each take to it
 * over the IPC channel (JSON; the takes of one event-loop turn in one message) and gets the verdict
 * back — a round trip measured 23–60 µs p50 on a loaded 2-core machine (bench/rate-limit.ts). Should the supervisor not answer within
 * SUPERVISOR_TIMEOUT_MS (or be gone), the worker decides alone with its share of the limit (rate
 * and burst / N), so the machine's total never exceeds the limit.
 */
import { type Clock, monotonicMs } from "../../util/clock.ts";
import type { BucketShape, Verdict } from "./gcra.ts";
import { LocalBuckets } from "./local-buckets.ts";

/** The number of workers, set by the supervisor in each worker's environment. */
export const WORKER_COUNT_ENV = "SWITCHYARD_WORKERS";

export function workerCount(): number {
  const n = Number(process.env[WORKER_COUNT_ENV]);
  return Number.isInteger(n) && n > 1 && typeof process.send === "function" ? n : 1;
}

const SUPERVISOR_TIMEOUT_MS = 100;

/** [id, store, key, emissionMs, toleranceMs, maxKeys] */
type Take = [number, string, string, number, number, number];
/** [id, allowed (1/0), remaining, resetMs, retryMs] */
type Answer = [number, number, number, number, number];

export type RateLimitMessage =
  | { type: "rate-limit-take"; batch: Take[] }
  | { type: "rate-limit-verdicts"; batch: Answer[] };

const toVerdict = (a: Answer): Verdict => ({ allowed: a[1] === 1, remaining: a[2], resetMs: a[3], retryMs: a[4] });

/** This worker's channel to the supervisor: batches takes per event-loop turn, matches answers by id. */
class SupervisorChannel {
  private nextId = 1;
  private queue: Take[] = [];
  private readonly pending = new Map<number, (answer: Answer | undefined) => void>();
  /** The supervisor is gone (its channel closed): decide alone at once rather than wait out the timeout. */
  private gone = false;

  constructor() {
    process.on("disconnect", () => {
      this.gone = true;
      for (const resolve of this.pending.values()) resolve(undefined);
      this.pending.clear();
    });
    process.on("message", (raw: unknown) => {
      const message = raw as RateLimitMessage;
      if (message?.type !== "rate-limit-verdicts") return;
      for (const answer of message.batch) {
        this.pending.get(answer[0])?.(answer);
        this.pending.delete(answer[0]);
      }
    });
  }

  /** The supervisor's answer, or undefined if it did not come in time. */
  take(store: string, key: string, shape: BucketShape, maxKeys: number): Promise<Answer | undefined> | undefined {
    if (this.gone || process.connected === false) return undefined;
    const id = this.nextId++;
    if (this.queue.length === 0) queueMicrotask(() => this.flush());
    this.queue.push([id, store, key, shape.emissionMs, shape.toleranceMs, maxKeys]);
    return new Promise((resolve) => this.pending.set(id, resolve));
  }

  private flush(): void {
    const batch = this.queue;
    this.queue = [];
    try {
      process.send!({ type: "rate-limit-take", batch } satisfies RateLimitMessage);
    } catch {
      // The channel is gone (supervisor died): the timer below gives these takes to the fallback.
    }
    setTimeout(() => {
      for (const take of batch) {
        const resolve = this.pending.get(take[0]);
        if (resolve === undefined) continue;
        this.pending.delete(take[0]);
        resolve(undefined);
      }
    }, SUPERVISOR_TIMEOUT_MS);
  }
}

let channel: SupervisorChannel | undefined;

/** A limit's buckets as kept by the supervisor, with this worker's share as the fallback. */
export class SupervisorBuckets {
  private readonly fallback: LocalBuckets;

  constructor(
    /** Identifies the limit and its settings (a reload with other settings starts with fresh buckets). */
    private readonly store: string,
    private readonly maxKeys: number,
    private readonly workers: number,
    name: string,
    onEvict: () => void,
  ) {
    this.fallback = new LocalBuckets(name, Math.ceil(maxKeys / workers), onEvict);
  }

  take(key: string, shape: BucketShape): Verdict | Promise<Verdict> {
    const asked = (channel ??= new SupervisorChannel()).take(this.store, key, shape, this.maxKeys);
    if (asked === undefined) return this.alone(key, shape);
    return asked.then((answer) => (answer === undefined ? this.alone(key, shape) : toVerdict(answer)));
  }

  dispose(): void {
    this.fallback.dispose();
  }

  private alone(key: string, shape: BucketShape): Verdict {
    return this.fallback.take(key, shareOf(shape, this.workers));
  }
}

/** One worker's share of a limit: 1/N of the rate, 1/N of the burst (at least one request). */
export function shareOf(shape: BucketShape, workers: number): BucketShape {
  const burst = Math.max(1, Math.floor(Math.round(shape.toleranceMs / shape.emissionMs) / workers));
  const emissionMs = shape.emissionMs * workers;
  return { emissionMs, toleranceMs: emissionMs * burst };
}

/** In the supervisor: the machine's buckets, answering the workers' takes. */
export function superviseRateLimits(evicted: (limit: string) => void, now: Clock = monotonicMs) {
  const stores = new Map<string, LocalBuckets>();
  // Stores of limits no longer configured empty out as their buckets fill up; then they go.
  setInterval(() => {
    for (const [id, store] of stores) {
      store.purgeIdle();
      if (store.size === 0) {
        store.dispose();
        stores.delete(id);
      }
    }
  }, 60_000).unref();
  return (message: RateLimitMessage, reply: (message: RateLimitMessage) => void): void => {
    if (message.type !== "rate-limit-take") return;
    const answers: Answer[] = [];
    for (const [id, storeId, key, emissionMs, toleranceMs, maxKeys] of message.batch) {
      let store = stores.get(storeId);
      if (store === undefined) {
        const name = storeId.slice(0, storeId.indexOf("\u0000"));
        stores.set(storeId, (store = new LocalBuckets(name, maxKeys, () => evicted(name), now)));
      }
      const v = store.take(key, { emissionMs, toleranceMs });
      answers.push([id, v.allowed ? 1 : 0, v.remaining, v.resetMs, v.retryMs]);
    }
    reply({ type: "rate-limit-verdicts", batch: answers });
  };
}
