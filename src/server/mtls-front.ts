/**
 * The TLS front of an mTLS listener, and of a TLS listener that speaks HTTP/2. Bun.serve cannot
 * show a handler the client's certificate (oven-sh/bun#14097), nor send HTTP/2 trailers, so for
 * those listeners a node:tls server owns the public port: it does the handshake (SNI, ALPN, client
 * certificate against the CA), reads the verified certificate, and then either hands the
 * connection to the listener's HTTP/2 engine in this process (ALPN `h2`: server/h2/engine.ts) or
 * relays the plaintext bytes to the listener's own Bun.serve on 127.0.0.1 (an ephemeral port).
 *
 * How a request learns its connection's identity, unforgeably: the front's socket to the inner
 * server has a local port, which is what the inner server's `requestIP(req).port` reports. The
 * front files the identity under that port before it relays a byte, and removes it when that
 * socket closes. Every request on a keep-alive connection finds the same entry; nothing a client
 * sends can name another entry, and a connection to the inner port that did not come through the
 * front finds none (and is refused by routes/proxy.ts).
 *
 * node:tls rather than Bun.listen: Bun.listen takes a single certificate (no SNI), while node:tls
 * has SNICallback, and with it certificates rotate in place without a second listener.
 * Cost: see README (mTLS) and bench/mtls.ts.
 */
import { canonicalHostName } from "../security/host.ts";
import type { Socket as NetSocket } from "node:net";
import { createSecureContext, createServer, type SecureContext, type TLSSocket } from "node:tls";
import type { Socket } from "bun";
import { identityOf } from "../security/client-identity.ts";
import type { ListenerTlsMaterial } from "../security/tls-files.ts";
import type { ClientAuthConfig } from "../security/tls-schema.ts";
import type { ClientIdentity } from "../security/client-identity.ts";

/** The client connection behind a request on a listener with a front. */
export interface FrontConnection {
  readonly clientIp: string;
  readonly clientPort: number;
  /** The client socket's address family (`IPv4`, `IPv6`). */
  readonly family: string;
  /** The verified client certificate; undefined when the client sent none (`mode: request`). */
  readonly identity: ClientIdentity | undefined;
}

/** The front's source address as the inner server reports it (IPv4, or IPv4-mapped on a dual-stack socket). */
const FRONT_SOURCE_ADDRESSES = new Set(["127.0.0.1", "::ffff:127.0.0.1"]);

/** Connections relayed by the front, by the local port of the front's socket to the inner server. */
export class FrontConnections {
  private readonly byPort = new Map<number, FrontConnection>();

  /**
   * The connection behind a request whose peer (as the inner server sees it) is `peer`. The front
   * dials from 127.0.0.1, so only that address counts: a local process may bind 127.0.0.2 (any of
   * 127/8) to the very port of a relayed connection and would otherwise be taken for it.
   */
  get(peer: { address: string; port: number } | null | undefined): FrontConnection | undefined {
    if (peer == null || !FRONT_SOURCE_ADDRESSES.has(peer.address)) return undefined;
    return this.byPort.get(peer.port);
  }

  /** The inner-socket ports filed now (for tests and diagnostics). */
  ports(): number[] {
    return [...this.byPort.keys()];
  }

  add(port: number, connection: FrontConnection): void {
    this.byPort.set(port, connection);
  }

  /** Removes the entry only if it is still this connection's (the port may already serve a newer one). */
  remove(port: number, connection: FrontConnection): void {
    if (this.byPort.get(port) === connection) this.byPort.delete(port);
  }

  get size(): number {
    return this.byPort.size;
  }
}

interface Contexts {
  readonly fallback: SecureContext;
  readonly exact: ReadonlyMap<string, SecureContext>;
  /** `*.example.com` entries, keyed by `example.com`. */
  readonly wildcard: ReadonlyMap<string, SecureContext>;
}

function contextOptions(cert: string, key: string, ca: string | undefined) {
  return { cert, key, ca, minVersion: "TLSv1.2" as const };
}

function buildContexts(material: ListenerTlsMaterial): Contexts {
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  let fallback: SecureContext | undefined;
  for (const c of material.certificates) {
    const context = createSecureContext(contextOptions(c.cert, c.key, material.clientCa));
    fallback ??= context;
    for (const name of c.serverNames) {
      const table = name.startsWith("*.") ? wildcard : exact;
      const keyName = name.startsWith("*.") ? name.slice(2) : name;
      if (!table.has(keyName)) table.set(keyName, context); // the first certificate to claim a name wins, as in Bun.serve
    }
  }
  return { fallback: fallback!, exact, wildcard };
}

/** By SNI name, in any case and with or without a trailing dot (as Bun.serve matches on TLS listeners). */
function contextFor(contexts: Contexts, serverName: string): SecureContext {
  const name = canonicalHostName(serverName.toLowerCase());
  const dot = name.indexOf(".");
  return contexts.exact.get(name) ?? (dot === -1 ? undefined : contexts.wildcard.get(name.slice(dot + 1))) ?? contexts.fallback;
}

export interface MtlsFrontOptions {
  address: string;
  port: number;
  reusePort: boolean;
  /** Client certificates asked for (mTLS); none when absent. */
  clientAuth?: ClientAuthConfig;
  /** The inner Bun.serve's port on 127.0.0.1, for HTTP/1.x clients; none when the listener does not speak http1. */
  innerPort?: number;
  connections: FrontConnections;
  /** A handshake not finished in this time is dropped (what stops a TLS-level slowloris). */
  handshakeTimeoutMs: number;
  /** Connections that choose ALPN `h2` go here (the listener's HTTP/2 engine); the front offers h2 only with it. */
  h2?: (socket: TLSSocket, connection: FrontConnection) => void;
}

/** Handshakes in progress at once when the listener has no client_auth setting of its own. */
const DEFAULT_MAX_PENDING_HANDSHAKES = 1024;

export interface MtlsFront {
  readonly port: number;
  /** Puts new certificates (and client CA) in force for new handshakes; open connections go on. */
  setMaterial(material: ListenerTlsMaterial): void;
  /**
   * Client connections still relaying (relayActive): every used one until the client has closed
   * it. The inner server's own count is not enough for a drain: a response it finished writing may
   * still sit in the loopback socket and in the front. Bun.serve's graceful stop closes its used
   * connections once their response is written (the front then ends the client's, and the client
   * closes it once it has read the answer), but not one that never sent a byte.
   */
  active(): number;
  /** Handshakes in progress (at most client_auth.max_pending_handshakes). */
  handshaking(): number;
  /** Stops accepting; with `force`, also closes every open client connection. */
  stop(force: boolean): void;
}

/** What the front knows of one relayed client connection. */
export interface Relay {
  /** The client has sent at least one byte (a connection that never did cannot be mid-exchange). */
  used: boolean;
}

/**
 * Whether a relayed client connection that is still open holds a drain: a used one does until the
 * client closes it, whatever the inner side's state. Once the inner server has closed, the front
 * cannot tell from here whether the answer has left: Bun's node:net/node:tls socket reports an
 * empty `writableLength` (and `finish`) as soon as its native socket took the bytes, while the
 * native socket may still hold the last TLS records the kernel had no room for (a slow reader).
 * A drain that let go then destroyed the socket (stop(true)) with them: the client lost the tail
 * of its answer (~50 KB). The client closes once it has read the answer and the FIN (endClient);
 * one that does not is bounded by LINGER_MS and by drain_timeout.
 */
export function relayActive(client: NetSocket, state: Relay): boolean {
  return state.used || client.writableLength > 0;
}

export async function startMtlsFront(material: ListenerTlsMaterial, options: MtlsFrontOptions): Promise<MtlsFront> {
  let contexts = buildContexts(material);
  const first = material.certificates[0]!;
  const clients = new Map<TLSSocket, Relay>();
  const clientAuth = options.clientAuth;
  const alpn = [...(options.h2 !== undefined ? ["h2"] : []), ...(options.innerPort !== undefined ? ["http/1.1"] : [])];
  const server = createServer({
    ...contextOptions(first.cert, first.key, material.clientCa),
    requestCert: clientAuth !== undefined,
    // `require`: a client without a valid certificate fails the handshake. `request`: checked below.
    rejectUnauthorized: clientAuth?.mode === "require",
    handshakeTimeout: options.handshakeTimeoutMs,
    SNICallback: (serverName, done) => done(null, contextFor(contexts, serverName)),
    // Without HTTP/2 no ALPN is offered (as before: every client gets HTTP/1.1).
    ...(options.h2 !== undefined && { ALPNProtocols: alpn }),
  });
  // Bun's node:tls leaves the socket open after a handshake timeout or a failed handshake: close it.
  server.on("tlsClientError", (_error, socket) => socket.destroy());
  // Handshakes in progress, bounded (in Bun the TLS socket is the accepted socket itself).
  const handshaking = new Set<object>();
  server.on("connection", (socket: import("node:net").Socket) => {
    if (handshaking.size >= (clientAuth?.max_pending_handshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES)) {
      socket.destroy();
      return;
    }
    handshaking.add(socket);
    socket.once("close", () => handshaking.delete(socket));
  });
  server.on("secureConnection", (client) => {
    handshaking.delete(client);
    if (clientAuth?.mode === "request" && !client.authorized && client.getPeerX509Certificate() !== undefined) {
      client.destroy(); // a certificate was offered and did not verify: refused, not treated as anonymous
      return;
    }
    const x509 = clientAuth !== undefined && client.authorized ? client.getPeerX509Certificate() : undefined;
    const connection: FrontConnection = {
      clientIp: client.remoteAddress ?? "",
      clientPort: client.remotePort ?? 0,
      family: client.remoteFamily ?? "IPv4",
      identity: x509 === undefined ? undefined : identityOf(x509),
    };
    if (client.alpnProtocol === "h2" && options.h2 !== undefined) {
      options.h2(client, connection);
      return;
    }
    // A client that chose no protocol (no ALPN) speaks HTTP/1.1, if the listener does.
    if (options.innerPort === undefined) {
      client.destroy();
      return;
    }
    const state: Relay = { used: false };
    clients.set(client, state);
    client.on("close", () => clients.delete(client));
    relay(client, state, options.innerPort, options.connections, connection);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.address, port: options.port, reusePort: options.reusePort }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (error) => console.error(JSON.stringify({ level: "error", msg: "mTLS front error", error: String(error) })));
  const address = server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : options.port,
    setMaterial(next) {
      contexts = buildContexts(next);
      const head = next.certificates[0]!;
      server.setSecureContext(contextOptions(head.cert, head.key, next.clientCa)); // for clients without SNI
    },
    active() {
      let n = 0;
      for (const [client, state] of clients) if (relayActive(client, state)) n++; // closed clients are no longer in `clients`
      return n;
    },
    handshaking: () => handshaking.size,
    stop(force) {
      server.close();
      if (force) for (const c of clients.keys()) c.destroy();
    },
  };
}

/**
 * How long a client may go on sending once the inner server has closed its side (nginx's lingering
 * close, lingering_time): its bytes are read and dropped meanwhile, then the connection is closed.
 */
const LINGER_MS = 5_000;

/**
 * Relays one client connection (its TLS already terminated, or a plain one: server/plain-front.ts)
 * to the inner server on `innerPort`, with backpressure both ways; `connection` is filed for the
 * inner server's requests to find.
 */
export function relay(client: NetSocket, state: Relay, innerPort: number, connections: FrontConnections, connection: FrontConnection): void {
  let inner: Socket<undefined> | undefined;
  let localPort = 0;
  /** Client bytes the inner socket did not take yet (the client is paused meanwhile). */
  let backlog: Buffer[] = [];
  /** The client's write buffer is full: inner reads are paused until it drains. */
  let waitingForClient = false;
  /** The inner server stopped reading this connection: what the client still sends is dropped. */
  let lingering = false;
  /**
   * Lingering close, as nginx's: when the inner server stops reading (Bun's 431 to a 1 MiB head it
   * read 16 KiB of), the client may still be sending. Destroying its socket with unread bytes
   * would reset the connection and lose the answer, so its bytes are read and dropped, the answer
   * is relayed and followed by a FIN (endClient), and the client gets at most LINGER_MS to close.
   */
  const linger = () => {
    if (lingering) return;
    lingering = true;
    backlog = [];
    client.resume();
    const timer = setTimeout(() => client.destroy(), LINGER_MS);
    timer.unref();
    client.once("close", () => clearTimeout(timer));
  };
  /** The inner side is finished: the client gets a FIN after what was relayed. */
  const endClient = () => {
    linger();
    client.end();
  };
  const toInner = (chunk: Buffer) => {
    const written = inner!.write(chunk);
    if (written < 0) return linger(); // the inner server closed its side; its answer may still be on the way
    if (written < chunk.length) {
      backlog.push(chunk.subarray(written));
      client.pause();
    }
  };
  client.setNoDelay(true); // request/response traffic: no Nagle delay on either hop
  client.pause(); // until the inner connection is open and filed
  client.on("data", (chunk: Buffer) => {
    state.used = true;
    if (lingering) return;
    if (backlog.length > 0) backlog.push(chunk);
    else toInner(chunk);
  });
  client.on("end", () => inner?.end());
  client.on("close", () => inner?.end());
  client.on("error", () => {}); // "close" follows
  Bun.connect({
    hostname: "127.0.0.1",
    port: innerPort,
    socket: {
      open(socket) {
        inner = socket;
        localPort = socket.localPort;
        socket.setNoDelay(true);
        // Filed before any byte is relayed, so the inner server's first request finds it.
        connections.add(localPort, connection);
        if (client.destroyed) {
          socket.end();
          return;
        }
        client.resume();
      },
      data(socket, chunk) {
        if (!client.write(chunk) && !waitingForClient) {
          waitingForClient = true;
          socket.pause();
          client.once("drain", () => {
            waitingForClient = false;
            socket.resume();
          });
        }
      },
      drain() {
        if (lingering) return;
        const pending = backlog;
        backlog = [];
        for (const chunk of pending) {
          if (backlog.length > 0) backlog.push(chunk);
          else toInner(chunk);
        }
        if (backlog.length === 0) client.resume();
      },
      end() {
        endClient();
      },
      close() {
        connections.remove(localPort, connection);
        endClient();
      },
      error() {},
      connectError() {
        client.destroy();
      },
    },
  }).catch(() => {
    client.destroy();
  });
}
