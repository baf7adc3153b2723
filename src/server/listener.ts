/** The only modules (with routes/) that touch Bun.serve for the proxy and admin listeners: this one, listener-parts.ts and quic.ts. */
import type { Server, TLSOptions } from "bun";
import { adminRoutes } from "../../routes/admin.ts";
import { proxyRoutes } from "../../routes/proxy.ts";
import type { Config, Listener } from "../config/schema.ts";
import { errorResponse, errors } from "../util/errors.ts";
import { type WebSocketSession, websocketHandlers } from "../proxy/websocket.ts";
import type { ApplyConfig, RuntimeRef } from "../runtime/runtime-ref.ts";
import { compileGuard } from "../security/guard.ts";
import { type ListenerTlsMaterial, loadListenerTls } from "../security/tls-files.ts";
import { startH2Listener } from "./h2-listener.ts";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, healthOf, onServerError, type ProxyListener, reloadListenerTls, routeOptions, type ServerState, serveHttp1, serverPending, urlHost } from "./listener-parts.ts";
import { FrontConnections, startMtlsFront } from "./mtls-front.ts";
import { altSvcValue, type QuicServer, startQuic, withAltSvc } from "./quic.ts";
import { bunServeTls, watchFiles } from "./tls.ts";

export async function startProxyListener(listener: Listener, index: number, state: ServerState, reusePort = false): Promise<ProxyListener> {
  const name = listener.name ?? `listener-${index}`;
  // HTTP/2 (h2c or h2 by ALPN) needs a front and the node:http2 engine (server/h2-listener.ts).
  if (listener.protocols.includes("http2")) return startH2Listener(listener, index, name, state, reusePort);
  const tlsPath = ["listeners", index, "tls"];
  const material = listener.tls ? loadListenerTls(listener.tls, tlsPath) : undefined;
  const connections = listener.tls?.client_auth ? new FrontConnections() : undefined;
  const options = routeOptions(listener, name, state, connections);
  const app = proxyRoutes(options, healthOf(listener, state));
  /** Alt-Svc for HTTP/1.1 answers, when the listener also serves HTTP/3 (server/quic.ts); set once the port is bound. */
  const altSvc = listener.protocols.includes("http3") ? { value: "" } : undefined;
  const h1 = altSvc === undefined ? app : withAltSvc(app, altSvc);
  const serve = (o: { hostname: string; port: number; reusePort: boolean; tls?: TLSOptions[] }) => serveHttp1(listener, h1, o);

  if (material === undefined) {
    const server = serve({ hostname: listener.address, port: listener.port, reusePort });
    return {
      name, port: server.port!, url: server.url,
      pending: () => serverPending(server),
      stop: (force) => void server.stop(force),
      reloadTls: () => "unchanged",
    };
  }
  let current = material;
  /** New material when the files changed (put in force by `apply`, which may throw: then nothing changes). */
  const reloadWith = (apply: (next: ListenerTlsMaterial) => void): "reloaded" | "unchanged" => {
    const next = loadListenerTls(listener.tls!, tlsPath);
    if (next.digest === current.digest) return "unchanged";
    apply(next);
    current = next;
    return "reloaded";
  };
  let handle: ProxyListener & { unwatch?: () => void };

  if (connections !== undefined) {
    // mTLS: a TLS front on the public port, relaying to this listener's Bun.serve on loopback.
    const inner = serve({ hostname: "127.0.0.1", port: 0, reusePort: false });
    const front = await startMtlsFront(material, {
      address: listener.address, port: listener.port, reusePort, clientAuth: listener.tls!.client_auth!,
      innerPort: inner.port!, connections,
      // As Bun.serve's TLS listeners, which count a silent handshake against their idle timeout.
      handshakeTimeoutMs: listener.idle_timeout || DEFAULT_HANDSHAKE_TIMEOUT_MS,
    }).catch((e: unknown) => {
      void inner.stop(true);
      throw e;
    });
    handle = {
      name, port: front.port, url: new URL(`https://${urlHost(listener.address)}:${front.port}/`),
      front: { innerPort: inner.port!, connections, handshaking: () => front.handshaking() },
      // The front too: a finished response may still be on its way to a slow client.
      pending: () => serverPending(inner) + front.active(),
      stop(force) {
        front.stop(force);
        void inner.stop(force);
        handle.unwatch?.();
      },
      reloadTls: () => reloadWith((next) => front.setMaterial(next)),
    };
  } else {
    // Plain TLS on Bun.serve. Bun's server.reload() ignores `tls` (oven-sh/bun#43815), so new
    // certificates mean a new server on the same port (reusePort) and a graceful stop of the old:
    // its requests, streams and WebSockets finish; its idle keep-alive connections are closed.
    let server = serve({ hostname: listener.address, port: listener.port, reusePort: true, tls: bunServeTls(material) });
    const port = server.port!;
    let quic: QuicServer | undefined;
    if (altSvc !== undefined) {
      quic = startQuic(listener, material, port, proxyRoutes({ ...options, protocol: "3" }, healthOf(listener, state)));
      altSvc.value = altSvcValue(port);
    }
    /** Servers replaced by a rotation, until their last request or WebSocket is done. */
    const retired = new Set<Server<WebSocketSession>>();
    const prune = () => {
      for (const old of retired) if (serverPending(old) === 0) retired.delete(old);
    };
    handle = {
      name, port, url: server.url,
      pending() {
        prune();
        return [server, ...retired].reduce((n, s) => n + serverPending(s), 0) + (quic?.pending() ?? 0);
      },
      stop(force) {
        for (const s of [server, ...retired]) void s.stop(force);
        quic?.stop(force);
        handle.unwatch?.();
      },
      reloadTls: () => reloadWith((next) => {
        const fresh = serve({ hostname: listener.address, port, reusePort: true, tls: bunServeTls(next) });
        quic?.reload(next);
        prune();
        retired.add(server);
        void server.stop(false);
        server = fresh;
      }),
    };
  }
  if (listener.tls!.watch) handle.unwatch = watchFiles(current.files, () => reloadListenerTls(handle));
  return handle;
}

export function startAdminListener(config: NonNullable<Config["admin"]>, state: ServerState): Server<undefined> {
  const app = adminRoutes({
    ready: () => !state.draining, runtime: state.runtime, token: config.token, fleet: () => state.fleet, rollouts: state.rollouts,
    applyConfig: (c, source, versionInfo) => state.applyConfig!(c, source, versionInfo),
  });
  return Bun.serve({
    hostname: config.address,
    port: config.port,
    development: false,
    fetch: (request, server) => app.fetch(request, server),
    error: onServerError,
  });
}

export { type ProxyListener, reloadListenerTls, type ServerState } from "./listener-parts.ts";
