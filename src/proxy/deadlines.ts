import type { AbortSource } from "./body.ts";
import { errors, type SwitchyardError } from "../util/errors.ts";

/**
 * The timers of one exchange: the route's whole-request deadline and the idle timeout (no bytes
 * either way), kept on one timer: it is set for whichever comes first, and when it fires it
 * checks both and re-arms itself for what is left. Chunks only stamp `lastActivity` (no timer
 * work per chunk). Either expiry aborts `controller`.
 */
export class Deadlines implements AbortSource {
  /** Made when first asked for: a local answer (a cache hit, a replay) never needs one. */
  private abortController: AbortController | undefined;
  /** Told when the exchange fails (the response body's watcher). */
  private abortListener: ((reason: unknown) => void) | undefined;
  private lastActivity = performance.now();
  private idleHeld = false;
  /** While a watched request body is still arriving, an idle expiry is the client's fault (408), not the upstream's. */
  clientSending = false;
  private timer: Timer | undefined;
  /** performance.now() when the whole-request deadline passes; undefined when there is none. */
  private requestEndsAt: number | undefined;
  /** The request deadline is a retry policy's per_try_timeout. */
  private perTry = false;

  /** `perTry`: the request timer is a retry policy's per_try_timeout (shorter than what is left of the route's). */
  constructor(requestMs: number, private readonly idleMs: number, perTry = false) {
    this.restartRequestTimer(requestMs, perTry);
  }

  get controller(): AbortController {
    return (this.abortController ??= new AbortController());
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Replaces the whole-request deadline (after a try's headers, the route's remaining time applies); 0 = none. */
  restartRequestTimer(ms: number, perTry = false): void {
    const now = performance.now();
    this.requestEndsAt = ms > 0 ? now + ms : undefined;
    this.perTry = perTry;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.abortController?.signal.aborted !== true) this.arm(now);
  }

  /** Milliseconds left before the whole-request timer fires (for deadlines sent upstream, e.g. grpc-timeout); undefined when none. */
  remaining(): number | undefined {
    return this.requestEndsAt === undefined ? undefined : Math.max(0, this.requestEndsAt - performance.now());
  }

  /**
   * While a request body streams to the upstream unwatched (Bun's own stream, see forward.ts) its
   * progress cannot be seen: the idle timer is held until the response headers come back.
   */
  holdIdle(): void {
    this.idleHeld = true;
  }

  releaseIdle(): void {
    this.idleHeld = false;
    this.touch();
  }

  touch(): void {
    this.lastActivity = performance.now();
  }

  fail(error: SwitchyardError): void {
    this.clear();
    if (this.abortController?.signal.aborted === true) return;
    this.controller.abort(error);
    const listener = this.abortListener;
    this.abortListener = undefined;
    listener?.(error);
  }

  onAbort(listener: ((reason: unknown) => void) | undefined): void {
    this.abortListener = listener;
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Sets the timer for the nearer of the two deadlines, if there is one. */
  private arm(now: number): void {
    let at = this.requestEndsAt ?? Number.POSITIVE_INFINITY;
    if (this.idleMs > 0) at = Math.min(at, this.lastActivity + this.idleMs);
    if (at === Number.POSITIVE_INFINITY) return;
    this.timer = setTimeout(() => this.expire(), Math.max(1, at - now));
  }

  private expire(): void {
    this.timer = undefined;
    const now = performance.now();
    // Timers may fire a fraction of a millisecond before their time: within 1 ms counts as reached.
    if (this.requestEndsAt !== undefined && now >= this.requestEndsAt - 1) {
      this.fail(this.perTry ? errors.tryTimeout() : errors.requestTimeout());
      return;
    }
    if (this.idleMs > 0) {
      if (this.idleHeld) this.lastActivity = now;
      if (now - this.lastActivity >= this.idleMs - 1) {
        this.fail(this.clientSending ? errors.clientTimeout() : errors.idleTimeout());
        return;
      }
    }
    this.arm(now);
  }
}
