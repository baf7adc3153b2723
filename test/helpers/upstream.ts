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

/** A TCP port on 127.0.0.1 that was free a moment ago (for configs that need a fixed port). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}
