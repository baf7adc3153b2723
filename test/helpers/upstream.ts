/** Real upstream servers for tests: Bun.serve on 127.0.0.1, port 0. */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";

export type Upstream = Server<unknown> & { origin: string };

export function startUpstream(
  fetch: (req: Request, server: Server<unknown>) => Response | Promise<Response | undefined> | undefined,
  websocket?: WebSocketHandler<unknown>,
): Upstream {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    fetch: fetch as (req: Request, server: Server<unknown>) => Response | Promise<Response>,
    websocket: websocket ?? { message() {} },
  }) as Server<unknown>;
  return Object.assign(server, { origin: `http://127.0.0.1:${server.port}` });
}

/** What an upstream saw of one request. */
export interface Seen {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string;
}

/** An upstream that records every request and answers 200 with `body` (default "ok"). */
export function recordingUpstream(body = "ok", headers: Record<string, string> = {}): Upstream & { seen: Seen[] } {
  const seen: Seen[] = [];
  const server = startUpstream(async (req) => {
    seen.push({ method: req.method, url: new URL(req.url, "http://invalid"), headers: Object.fromEntries(req.headers), body: await req.text() });
    return new Response(body, { headers });
  });
  return Object.assign(server, { seen });
}

export type { ServerWebSocket };

/** A raw TCP upstream that answers each connection's first bytes by hand (partial bodies, resets, stalls). */
export function rawUpstream(onData: (socket: import("bun").Socket<undefined>, data: string) => void): { port: number; origin: string; stop(): void } {
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, data) {
        onData(socket, data.toString("latin1"));
      },
      error() {},
    },
  });
  return { port: listener.port, origin: `http://127.0.0.1:${listener.port}`, stop: () => listener.stop(true) };
}

/** A body that sends `chunks` with `gapMs` between them, and records whether the reader cancelled it. */
export function slowBody(chunks: string[], gapMs: number, state: { cancelled?: boolean } = {}): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i > 0) await Bun.sleep(gapMs);
      if (i >= chunks.length) return controller.close();
      controller.enqueue(encoder.encode(chunks[i++]));
    },
    cancel() {
      state.cancelled = true;
    },
  });
}

/**
 * A gate an upstream's handler passes through: each request is counted in as it arrives, then
 * waits until the test opens the gate. "The upstream has the request" becomes an event to await
 * (`arrived`), and how long it stays in flight is the test's choice, not a sleep's.
 */
export interface Gate {
  /** In the upstream's handler: counts the request in, then resolves once the gate is open. */
  pass(): Promise<void>;
  /** Requests that reached `pass()` so far. */
  readonly arrivals: number;
  /** Resolves once `n` requests in all have reached `pass()`; rejects after `timeoutMs`, saying how many did. */
  arrived(n: number, timeoutMs?: number): Promise<void>;
  /** Lets the waiting requests and every later one through. */
  open(): void;
}

export function gate(): Gate {
  let arrivals = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const watchers: { n: number; resolve(): void }[] = [];
  return {
    get arrivals() {
      return arrivals;
    },
    pass() {
      arrivals++;
      for (const w of watchers.filter((w) => arrivals >= w.n)) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve();
      }
      return opened;
    },
    arrived(n, timeoutMs = 5000) {
      if (arrivals >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} requests at the upstream (${arrivals} arrived)`)), timeoutMs);
        watchers.push({ n, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
    open: () => open(),
  };
}

/**
 * Waits `ms`, or less when the client (the proxy) gives up on `req` first: an upstream slow on
 * purpose whose slowness is far beyond what the test allows, without its handler lingering after.
 */
export function stall(req: Request, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    req.signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for configs that need a fixed port). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}
