/**
 * Runs an async task one call at a time. A call made while a run is in progress is not folded into
 * it — that run may have read its input (a file) before the change the call is about — but gets
 * one follow-up run after it, shared by every call made meanwhile, their arguments combined by
 * `merge`. So a burst of calls costs at most two runs, and the last call is always seen.
 */
export function oneAtATime<A, R>(run: (arg: A) => Promise<R>, merge: (a: A, b: A) => A): (arg: A) => Promise<R> {
  let running: Promise<R> | undefined;
  let next: { args: { value: A }; done: Promise<R> } | undefined;
  const settled = () => undefined;
  const call = (arg: A): Promise<R> => {
    if (running === undefined) {
      const current = run(arg).finally(() => {
        if (running === current) running = undefined;
      });
      running = current;
      return current;
    }
    if (next !== undefined) {
      next.args.value = merge(next.args.value, arg);
      return next.done;
    }
    const args = { value: arg };
    // After the current run settles (whether it succeeded or not); by then `running` is cleared.
    const done = running.then(settled, settled).then(() => {
      next = undefined;
      return call(args.value);
    });
    next = { args, done };
    return done;
  };
  return call;
}
