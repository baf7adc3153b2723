/**
 * The front of a plain (no TLS) listener that speaks HTTP/2 by prior knowledge (h2c, RFC 9113
 * §3.3): a node:net server on the public port reads each connection's first bytes; a connection
 * that opens with the HTTP/2 preface goes to the listener's HTTP/2 engine in this process, any
 * other (HTTP/1.x) is relayed to the listener's Bun.serve on loopback, as the TLS front does
 * (server/mtls-front.ts: the same relay, the same FrontConnections for the client's address).
 *
 * A listener with `protocols: [http2]` only has no HTTP/1.x side: every connection goes to the
 * engine, which refuses one without the preface (GOAWAY PROTOCOL_ERROR).
 */
import { createServer, type Socket } from "node:net";
import { type FrontConnection, type FrontConnections, relay, relayActive, type Relay } from "./mtls-front.ts";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export interface PlainFrontOptions {
  address: string;
  port: number;
  reusePort: boolean;
  /** The inner Bun.serve's port on 127.0.0.1 (HTTP/1.x clients); none: the listener speaks h2c only. */
  innerPort?: number;
  connections: FrontConnections;
  /** A connection that has not shown which protocol it speaks within this time is closed. */
  firstBytesTimeoutMs: number;
  h2(socket: Socket, connection: FrontConnection): void;
}

export interface PlainFront {
  readonly port: number;
  /** Relayed HTTP/1.x connections still busy (see MtlsFront.active). */
  active(): number;
  stop(force: boolean): void;
}

/** Whether `head` (the first bytes of a connection) is, or may still become, the HTTP/2 preface. */
export function prefaceState(head: Buffer): "h2" | "maybe" | "other" {
  const n = Math.min(head.length, PREFACE.length);
  if (head.compare(PREFACE, 0, n, 0, n) !== 0) return "other";
  return n === PREFACE.length ? "h2" : "maybe";
}

export async function startPlainFront(options: PlainFrontOptions): Promise<PlainFront> {
  const relays = new Map<Socket, Relay>();
  const open = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    const connection: FrontConnection = {
      clientIp: socket.remoteAddress ?? "", clientPort: socket.remotePort ?? 0, family: socket.remoteFamily ?? "IPv4", identity: undefined,
    };
    if (options.innerPort === undefined) {
      options.h2(socket, connection);
      return;
    }
    const innerPort = options.innerPort;
    let head: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), options.firstBytesTimeoutMs);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const state = prefaceState(head);
      if (state === "maybe") return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (state === "h2") {
        options.h2(socket, connection);
        socket.resume();
        return;
      }
      const relayState: Relay = { used: false };
      relays.set(socket, relayState);
      socket.on("close", () => relays.delete(socket));
      relay(socket, relayState, innerPort, options.connections, connection);
    };
    socket.on("data", onData);
    socket.once("close", () => clearTimeout(timer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.address, port: options.port, reusePort: options.reusePort }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => console.error(JSON.stringify({ level: "error", msg: "listener front error", error: String(error) })));
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : options.port,
    active() {
      let n = 0;
      for (const [socket, state] of relays) if (relayActive(socket, state)) n++; // closed sockets are no longer in `relays`
      return n;
    },
    stop(force) {
      server.close();
      if (force) for (const socket of open) socket.destroy();
    },
  };
}
