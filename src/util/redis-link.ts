/**
 * One Redis connection on our terms, shared by the global rate limits and the fleet: Bun's
 * RedisClient with its own reconnection and offline queue off, so a command never waits for a
 * connection behind our back; every call bounded by a timeout; after a connection failure Redis is
 * skipped for `retryIntervalMs` (an outage costs no latency and piles up no commands), then one
 * call tries again. Outages and recoveries are told to the owner once each. Replies are RESP3.
 */
import { RedisClient } from "bun";
import { type Clock, monotonicMs } from "./clock.ts";

/**
 * Redis gave no answer: none in time, an error, or skipped because it failed moments ago.
 * `refusal`: the server answered with an error for this command (a wrong-type key, a script
 * error); the connection is fine.
 */
export class RedisUnavailable extends Error {
  constructor(readonly reason: "timeout" | "error" | "down", message: string, cause?: unknown, readonly refusal = false) {
    super(message, { cause });
    this.name = "RedisUnavailable";
  }
}

export interface RedisScript {
  readonly source: string;
  readonly sha: string;
}

export const redisScript = (source: string): RedisScript => ({ source, sha: new Bun.CryptoHasher("sha1").update(source).digest("hex") });

/** Redis URLs may carry a password: logs and status pages name only scheme, host and port. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "" : u.pathname}`;
  } catch {
    return "(redis)";
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RedisUnavailable("timeout", `redis did not ${what} within ${ms}ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

export interface RedisLinkEvents {
  /** The first connection failure of an outage (once per outage). */
  down(error: RedisUnavailable): void;
  /** An answer after an outage (`again`), or the first answer ever. */
  up(again: boolean): void;
}

export class RedisLink {
  private client: RedisClient | undefined;
  private connecting: Promise<void> | undefined;
  private connectStartedAt = 0;
  private retryAt = Number.NEGATIVE_INFINITY;
  private down = false;
  private everReached = false;
  private disposed = false;

  constructor(
    readonly url: string,
    private readonly retryIntervalMs: number,
    private readonly events: RedisLinkEvents,
    private readonly now: Clock = monotonicMs,
  ) {}

  /** Connected and not known to be failing. */
  get up(): boolean {
    return !this.down && this.client?.connected === true;
  }

  /** One command; throws RedisUnavailable when Redis cannot answer within `timeoutMs`. */
  async send(command: string, args: string[], timeoutMs: number): Promise<unknown> {
    const client = await this.ready(timeoutMs);
    return this.answered(client, withTimeout(client.send(command, args), timeoutMs, "answer"));
  }

  /** A Lua script by its digest, loaded first when the server does not know it (its first use, or after a restart). */
  async eval(s: RedisScript, keys: string[], args: string[], timeoutMs: number): Promise<unknown> {
    const client = await this.ready(timeoutMs);
    const params = [String(keys.length), ...keys, ...args];
    const reply = client.send("EVALSHA", [s.sha, ...params]).catch((e: unknown) => {
      if (!String((e as Error)?.message).startsWith("NOSCRIPT")) throw e;
      return client.send("EVAL", [s.source, ...params]);
    });
    return this.answered(client, withTimeout(reply, timeoutMs, "answer"));
  }

  /** Closes the connection; later calls fail at once. */
  dispose(): void {
    this.disposed = true;
    this.client?.close();
    this.client = undefined;
  }

  /** The reply, or (on a connection failure) the error after the client is closed. A server's refusal of one command leaves the connection be. */
  private async answered<T>(client: RedisClient, reply: Promise<T>): Promise<T> {
    let value: T;
    try {
      value = await reply;
    } catch (e) {
      if ((e as { code?: string })?.code === "ERR_REDIS_SERVER_ERROR") throw new RedisUnavailable("error", `redis refused: ${(e as Error).message}`, e, true);
      throw this.failed(client, e);
    }
    this.reachable();
    return value;
  }

  /** A connected client, connecting first if due; throws when Redis is being skipped. */
  private async ready(timeoutMs: number): Promise<RedisClient> {
    if (this.client?.connected && this.connecting === undefined) return this.client;
    const now = this.now();
    if (this.connecting === undefined) {
      if (this.disposed) throw new RedisUnavailable("down", "the redis connection is closed");
      if (now < this.retryAt) throw new RedisUnavailable("down", "redis failed recently; skipped until the retry interval has passed");
      this.retryAt = now + this.retryIntervalMs;
      this.connectStartedAt = now;
      this.client?.close();
      const client = new RedisClient(this.url, { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: Math.max(1000, this.retryIntervalMs) });
      client.onclose = () => {};
      this.client = client;
      const attempt = client.connect().then(
        () => {
          this.connecting = undefined;
        },
        (e: unknown) => {
          this.connecting = undefined;
          throw this.failed(client, e);
        },
      );
      attempt.catch(() => {});
      this.connecting = attempt;
    } else if (now - this.connectStartedAt > timeoutMs) {
      // A connect that is taking long (a host that drops packets): don't make every call wait on it.
      throw new RedisUnavailable("down", "redis connection still being established");
    }
    await withTimeout(this.connecting!, timeoutMs, "accept a connection");
    return this.client!;
  }

  /** Closes the failed client (its queued commands fail at once), tells the outage once, returns the error to throw. */
  private failed(client: RedisClient, e: unknown): RedisUnavailable {
    const error = e instanceof RedisUnavailable ? e : new RedisUnavailable("error", `redis: ${(e as Error)?.message ?? String(e)}`, e);
    if (client === this.client) {
      this.client = undefined;
      this.retryAt = this.now() + this.retryIntervalMs;
      client.close();
    }
    if (!this.down && !this.disposed) {
      this.down = true;
      this.events.down(error);
    }
    return error;
  }

  private reachable(): void {
    if (!this.down && this.everReached) return;
    const again = this.down;
    this.down = false;
    this.everReached = true;
    this.events.up(again);
  }
}
