/** A TLS client on one connection (node:tls), for tests that need the same connection twice, the served certificate, or a chosen source address. */
import { type ConnectionOptions, connect, type PeerCertificate, type TLSSocket } from "node:tls";
import { parseRaw, type RawResponse } from "./raw.ts";

export interface TlsClientOptions {
  port: number;
  servername?: string;
  ca?: string;
  cert?: string;
  key?: string;
  /** Source address (any of 127.0.0.0/8 works on Linux loopback). */
  localAddress?: string;
  /** Replaces the host name check (`() => undefined` accepts any name; the chain is still verified). */
  checkServerIdentity?: ConnectionOptions["checkServerIdentity"];
  /** Highest protocol version offered. */
  maxVersion?: "TLSv1.2" | "TLSv1.3";
}

export interface TlsConnection {
  socket: TLSSocket;
  peer: PeerCertificate;
  /** Sends one request and reads one response (Content-Length framed), bounded by `timeoutMs`. */
  request(raw: string, timeoutMs?: number): Promise<RawResponse>;
  /** Resolves when the peer has closed the connection (or at `timeoutMs` with false). */
  closed(timeoutMs?: number): Promise<boolean>;
  close(): void;
}

/** Connects and completes the handshake; rejects with the TLS error when it fails (or after 5 s). */
export function tlsConnect(o: TlsClientOptions): Promise<TlsConnection> {
  return new Promise((resolve, reject) => {
    const { port, ...rest } = o;
    // Only the options given (undefined ones would override node's defaults).
    const given = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as ConnectionOptions;
    const socket = connect({ host: "127.0.0.1", port, ...given });
    let buffer = Buffer.alloc(0);
    let waiter: (() => void) | undefined;
    let ended = false;
    socket.on("data", (d: Buffer) => {
      buffer = Buffer.concat([buffer, d]);
      waiter?.();
    });
    socket.on("close", () => {
      ended = true;
      waiter?.();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("TLS handshake timed out"));
    }, 5000);
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on("secureConnect", () => {
      // TLS 1.3: a server that refuses the client certificate says so after the client's handshake ends
      // (a negative check: no refusal within 50 ms).
      setTimeout(() => {
        clearTimeout(timer);
        if (ended) return reject(new Error("the server closed the connection after the handshake"));
        resolve({
          socket,
          peer: socket.getPeerCertificate(),
          request(raw, timeoutMs = 5000) {
            return new Promise((done, fail) => {
              const deadline = setTimeout(() => fail(new Error(`no complete response within ${timeoutMs} ms: ${buffer.toString("latin1")}`)), timeoutMs);
              const check = () => {
                const text = buffer.toString("latin1");
                const end = text.indexOf("\r\n\r\n");
                const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
                if (end !== -1 && buffer.length >= end + 4 + length) {
                  clearTimeout(deadline);
                  waiter = undefined;
                  const response = text.slice(0, end + 4 + length);
                  buffer = buffer.subarray(end + 4 + length);
                  done(parseRaw(response));
                } else if (ended) {
                  clearTimeout(deadline);
                  fail(new Error(`connection closed before a complete response: ${text}`));
                }
              };
              waiter = check;
              socket.write(raw);
              check();
            });
          },
          closed(timeoutMs = 5000) {
            if (ended) return Promise.resolve(true);
            return new Promise((done) => {
              const t = setTimeout(() => done(false), timeoutMs);
              socket.once("close", () => {
                clearTimeout(t);
                done(true);
              });
            });
          },
          close: () => socket.destroy(),
        });
      }, 50);
    });
  });
}
