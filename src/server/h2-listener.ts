/**
 * A proxy listener that speaks HTTP/2: a front owns the public port and sorts connections —
 * TLS by ALPN (server/mtls-front.ts), plain ones by the h2c preface (server/plain-front.ts) —
 * handing HTTP/2 connections to the node:http2 engine (server/h2/engine.ts) in this process and
 * relaying HTTP/1.x ones to the listener's Bun.serve on loopback. HTTP/3, when listed, is
 * Bun.serve's QUIC on the same port number (server/quic.ts).
 *
 * Every request, whatever its version, goes to the same handler (routes/proxy.ts) and pipeline;
 * the version is known by which server it came through (ProxyRouteOptions.protocol).
 */
import { proxyRoutes } from "../../routes/proxy.ts";
import type { Listener } from "../config/schema.ts";
import { loadListenerTls } from "../security/tls-files.ts";
import { createH2Engine, type H2Engine } from "./h2/engine.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, healthOf, type ProxyListener, reloadListenerTls, routeOptions, type ServerState, serveHttp1, serverPending, urlHost } from "./listener-parts.ts";
import { type FrontConnection, FrontConnections, startMtlsFront } from "./mtls-front.ts";
import { startPlainFront } from "./plain-front.ts";
import { altSvcValue, type QuicServer, startQuic, withAltSvc } from "./quic.ts";
import { watchFiles } from "./tls.ts";

/** HPACK counts 32 bytes per field beyond its name and value (RFC 7541 §4.1). */
const HPACK_FIELD_OVERHEAD = 32;

export async function startH2Listener(listener: Listener, index: number, name: string, state: ServerState, reusePort: boolean): Promise<ProxyListener> {
  const tlsPath = ["listeners", index, "tls"];
  let material = listener.tls ? loadListenerTls(listener.tls, tlsPath) : undefined;
  const connections = new FrontConnections();
  const base = routeOptions(listener, name, state, connections);
  const health = healthOf(listener, state);
  const http1 = listener.protocols.includes("http1");
  /** Alt-Svc of an http3 listener, for its HTTP/1.1 and HTTP/2 answers (set once the port is bound). */
  const altSvc = listener.protocols.includes("http3") ? { value: "" } : undefined;
  const extraHeaders: Record<string, string> = {};

  const engine: H2Engine<FrontConnection> = createH2Engine<FrontConnection>({
    scheme: material === undefined ? "http" : "https",
    limits: listener.http2,
    maxHeaderListSize: listener.max_header_bytes + HPACK_FIELD_OVERHEAD * listener.max_headers,
    idleTimeoutMs: listener.idle_timeout,
    maxRequestBody: listener.max_request_body,
    extraHeaders,
    handler: proxyRoutes({ ...base, protocol: "2", connectionOf: (request): FrontConnection | undefined => engine.connectionOf(request) }, health),
  });
  const app = proxyRoutes(base, health);
  const inner = http1 ? serveHttp1(listener, altSvc === undefined ? app : withAltSvc(app, altSvc), { hostname: "127.0.0.1", port: 0, reusePort: false }) : undefined;
  const firstBytesMs = listener.idle_timeout || DEFAULT_HANDSHAKE_TIMEOUT_MS;

  let front: { port: number; active(): number; stop(force: boolean): void; setMaterial?: (m: NonNullable<typeof material>) => void; handshaking?: () => number };
  try {
    front = material === undefined
      ? await startPlainFront({
          address: listener.address, port: listener.port, reusePort, innerPort: inner?.port, connections, firstBytesTimeoutMs: firstBytesMs,
          h2: (socket, connection) => engine.accept(socket, connection),
        })
      : await startMtlsFront(material, {
          address: listener.address, port: listener.port, reusePort, clientAuth: listener.tls!.client_auth,
          innerPort: inner?.port, connections, handshakeTimeoutMs: firstBytesMs,
          h2: (socket, connection) => engine.accept(socket, connection),
        });
  } catch (e) {
    void inner?.stop(true);
    throw e;
  }
  const port = front.port;
  let quic: QuicServer | undefined;
  if (altSvc !== undefined && material !== undefined) {
    // QUIC clients reach Bun.serve directly (no front): their peer address is their own.
    quic = startQuic(listener, material, port, proxyRoutes({ ...base, protocol: "3", connectionOf: undefined }, health));
    altSvc.value = extraHeaders["alt-svc"] = altSvcValue(port);
  }
  let unwatch: (() => void) | undefined;
  const handle: ProxyListener = {
    name, port,
    url: new URL(`${material === undefined ? "http" : "https"}://${urlHost(listener.address)}:${port}/`),
    ...(inner !== undefined && { front: { innerPort: inner.port!, connections, handshaking: () => front.handshaking?.() ?? 0 } }),
    // The front's relays too: a finished HTTP/1.1 answer may still be on its way to a slow client.
    pending: () => engine.pending() + (inner === undefined ? 0 : serverPending(inner)) + front.active() + (quic?.pending() ?? 0),
    stop(force) {
      // Graceful: the port closes, every HTTP/2 connection gets GOAWAY and its open streams finish.
      front.stop(force);
      engine.close(force);
      void inner?.stop(force);
      quic?.stop(force);
      unwatch?.();
    },
    reloadTls() {
      if (material === undefined || listener.tls === undefined) return "unchanged";
      const next = loadListenerTls(listener.tls, tlsPath);
      if (next.digest === material.digest) return "unchanged";
      front.setMaterial?.(next);
      quic?.reload(next);
      material = next;
      return "reloaded";
    },
  };
  if (material !== undefined && listener.tls!.watch) unwatch = watchFiles(material.files, () => reloadListenerTls(handle));
  return handle;
}
