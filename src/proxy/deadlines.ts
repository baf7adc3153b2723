import { errors, type SwitchyardError } from "./errors.ts";

/**
 * The timers of one exchange: the route's whole-request deadline and the idle timeout (no bytes
 * either way). The idle timer is not re-armed per chunk: chunks only stamp `lastActivity`, and the
 * timer, when it fires, re-arms itself for the remainder. Either expiry aborts `controller`.
 */
export class Deadlines {
  readonly controller = new AbortController();
  private lastActivity = performance.now();
  private idleHeld = false;
  /** While a watched request body is still arriving, an idle expiry is the client's fault (408), not the upstream's. */
  clientSending = false;
  private requestTimer: Timer | undefined;
  /** performance.now() when the whole-request timer fires; undefined when there is none. */
  private requestEndsAt: number | undefined;
  private idleTimer: Timer | undefined;

  /** `perTry`: the request timer is a retry policy's per_try_timeout (shorter than what is left of the route's). */
  constructor(requestMs: number, private readonly idleMs: number, perTry = false) {
    this.restartRequestTimer(requestMs, perTry);
    if (idleMs > 0) this.idleTimer = setTimeout(() => this.checkIdle(), idleMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Replaces the whole-request timer (after a try's headers, the route's remaining time applies); 0 = none. */
  restartRequestTimer(ms: number, perTry = false): void {
    clearTimeout(this.requestTimer);
    this.requestTimer = ms > 0 ? setTimeout(() => this.fail(perTry ? errors.tryTimeout() : errors.requestTimeout()), ms) : undefined;
    this.requestEndsAt = ms > 0 ? performance.now() + ms : undefined;
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
    if (!this.controller.signal.aborted) this.controller.abort(error);
  }

  clear(): void {
    clearTimeout(this.requestTimer);
    clearTimeout(this.idleTimer);
    this.requestTimer = this.idleTimer = undefined;
  }

  private checkIdle(): void {
    if (this.idleHeld) this.touch();
    const quiet = performance.now() - this.lastActivity;
    if (quiet >= this.idleMs) this.fail(this.clientSending ? errors.clientTimeout() : errors.idleTimeout());
    else this.idleTimer = setTimeout(() => this.checkIdle(), this.idleMs - quiet);
  }
}
