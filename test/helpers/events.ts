/**
 * The event log of a proxy started in this process: the JSON lines Switchyard writes with
 * console.error (reloads, rejected files, failed discovery…), collected as a spawned proxy's are
 * (cli.ts), so a test waits for the line rather than for time to pass. Lines still reach stderr.
 */
import { waitFor } from "./tmp.ts";

export interface EventLog {
  events: Record<string, unknown>[];
  /** The first event `msg` logged after the first `after` events. */
  waitForEvent(msg: string, after?: number, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Stops collecting (console.error is itself again). */
  restore(): void;
}

export function captureEvents(): EventLog {
  const events: Record<string, unknown>[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => {
    if (typeof args[0] === "string" && args[0].startsWith("{")) {
      try {
        events.push(JSON.parse(args[0]) as Record<string, unknown>);
      } catch {}
    }
    original.apply(console, args);
  };
  return {
    events,
    waitForEvent: (msg, after = 0, timeoutMs = 5000) =>
      waitFor(`event "${msg}" (got: ${events.slice(after).map((e) => e.msg).join(", ")})`, () => events.slice(after).find((e) => e.msg === msg), timeoutMs),
    restore: () => void (console.error = original),
  };
}
