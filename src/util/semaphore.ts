/**
 * Counted slots with a bounded FIFO queue: a holder takes one (at once, or after waiting its turn
 * until a signal gives up) and gives it back; the next waiter gets it. Used for a cluster's
 * max_connections and an endpoint's answer gate.
 */
export class Semaphore {
  /** Slots held now. */
  held = 0;
  private readonly waiting: (() => void)[] = [];

  /** `limit`: slots (0 = unlimited); `maxWaiting`: waiters queued at most (more are refused). */
  constructor(private readonly limit: number, private readonly maxWaiting: number) {}

  /** Takes a free slot if there is one (never waits). */
  tryAcquire(): boolean {
    if (this.limit > 0 && this.held >= this.limit) return false;
    this.held++;
    return true;
  }

  /**
   * A free slot, or one when a holder gives it back; false when the queue is full or `giveUpSignal`
   * (made only when waiting: the fast path allocates nothing) fires first.
   */
  acquire(giveUpSignal?: () => AbortSignal): boolean | Promise<boolean> {
    if (this.tryAcquire()) return true;
    if (this.waiting.length >= this.maxWaiting) return false;
    const signal = giveUpSignal?.();
    if (signal?.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        signal?.removeEventListener("abort", giveUp);
        this.held++;
        resolve(true);
      };
      const giveUp = () => {
        const i = this.waiting.indexOf(wake);
        if (i !== -1) this.waiting.splice(i, 1);
        resolve(false);
      };
      this.waiting.push(wake);
      signal?.addEventListener("abort", giveUp, { once: true });
    });
  }

  release(): void {
    this.held--;
    this.waiting.shift()?.();
  }

  get pending(): number {
    return this.waiting.length;
  }
}
