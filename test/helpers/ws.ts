/** WebSocket test peers: a promise-friendly client, and a raw client that can stop reading or vanish. */
import { connect, type Socket } from "node:net";

export interface WsEvent {
  type: "message" | "close" | "ping" | "pong";
  data?: string | Buffer;
  code?: number;
  reason?: string;
}

/** A Bun WebSocket client that records everything it receives. */
export function wsClient(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}) {
  const ws = new WebSocket(url, { protocols: options.protocols, headers: options.headers } as unknown as string[]);
  ws.binaryType = "nodebuffer";
  const events: WsEvent[] = [];
  const waiters: (() => void)[] = [];
  const push = (e: WsEvent) => {
    events.push(e);
    for (const w of waiters.splice(0)) w();
  };
  ws.addEventListener("message", (e) => push({ type: "message", data: e.data as string | Buffer }));
  ws.addEventListener("close", (e) => push({ type: "close", code: e.code, reason: e.reason }));
  ws.addEventListener("ping", (e) => push({ type: "ping", data: (e as MessageEvent).data as Buffer }));
  ws.addEventListener("pong", (e) => push({ type: "pong", data: (e as MessageEvent).data as Buffer }));
  const opened = new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", (e) => reject(new Error((e as ErrorEvent).message || "websocket error")), { once: true });
  });
  /** Resolves with the first event of `type` not yet taken. */
  const taken = new Set<WsEvent>();
  async function next(type: WsEvent["type"], timeoutMs = 3000): Promise<WsEvent> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = events.find((e) => e.type === type && !taken.has(e));
      if (found) {
        taken.add(found);
        return found;
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${type} event within ${timeoutMs}ms (got ${events.map((e) => e.type).join(",")})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
  return { ws, events, opened, next };
}

/** A raw-socket WebSocket client: handshake only, so a test can stop reading, count bytes, or drop the TCP connection. */
export function rawWsClient(port: number, path: string): Promise<{ socket: Socket; head: string; received: () => number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let head = "";
    let received = 0;
    let upgraded = false;
    socket.on("connect", () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      );
    });
    socket.on("data", (chunk: Buffer) => {
      if (upgraded) {
        received += chunk.byteLength;
        return;
      }
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end !== -1) {
        upgraded = true;
        received += Buffer.byteLength(head.slice(end + 4), "latin1");
        head = head.slice(0, end);
        resolve({ socket, head, received: () => received });
      }
    });
    socket.on("error", reject);
  });
}
