/** The only module (with routes/) that touches Bun.serve for the proxy and admin listeners. */
import type { Server, TLSOptions } from "bun";
import { adminRoutes } from "../../routes/admin.ts";
import { proxyRoutes } from "../../routes/proxy.ts";
import type { Config, Listener } from "../config/schema.ts";
import { errorResponse, errors } from "../util/errors.ts";
import { type WebSocketSession, websocketHandlers } from "../proxy/websocket.ts";
import type { ApplyConfig, RuntimeRef } from "../runtime/runtime-ref.ts";
import type { FleetReader } from "../../routes/fleet.ts";
import { compileGuard } from "../security/guard.ts";
import { type ListenerTlsMaterial, loadListenerTls, TlsFileError } from "../security/tls-files.ts";
import type { RolloutController } from "../rollout/controller.ts";
import { FrontConnections, startMtlsFront } from "./mtls-front.ts";
import { bunServeTls, logTls, watchFiles } from "./tls.ts";

export interface ServerState {
  runtime: RuntimeRef;
  draining: boolean;
  /** Puts a validated config in force (a push through the admin API or the config service). */
  applyConfig?: ApplyConfig;
  /** Rollouts and SLOs of this process (the admin API's /rollouts and /slos). */
  rollouts?: RolloutController;
  /** With a fleet: what /fleet and GetConfig show of it (the agent, in the process with the admin listener). */
  fleet?: FleetReader;
}

/** Last guard: Bun calls this if a handler throws; the process must never crash on a request. */
function onServerError(error: Error): Response {
  console.error(JSON.stringify({ level: "error", msg: "unhandled request error", error: String(error) }));
  return errorResponse(errors.internal(), crypto.randomUUID());
}

/** A proxy listener, whichever way it serves (plain, TLS, mTLS through a front). */
export interface ProxyListener {
  readonly name: string;
  /** The bound public port (kept across certificate reloads). */
  readonly port: number;
  readonly url: URL;
  /** Requests and WebSockets in flight, on every server still serving (for drain). */
  pending(): number;
  /** Stops accepting connections; with `force`, closes the open ones too. */
  stop(force: boolean): void;
  /**
   * Re-reads the TLS files and puts them in force when they changed: "reloaded", "unchanged", or
   * throws TlsFileError (the certificates in force stay). Plain listeners: "unchanged".
   */
  reloadTls(): "reloaded" | "unchanged";
  /** mTLS listeners: the listener's own Bun.serve on loopback behind the TLS front, and the connections the front relays to it. */
  readonly front?: { readonly innerPort: number; readonly connections: FrontConnections; handshaking(): number };
}

export async function startProxyListener(listener: Listener, index: number, state: ServerState, reusePort = false): Promise<ProxyListener> {
  const name = listener.name ?? `listener-${index}`;
  const tlsPath = ["listeners", index, "tls"];
  const material = listener.tls ? loadListenerTls(listener.tls, tlsPath) : undefined;
  const connections = listener.tls?.client_auth ? new FrontConnections() : undefined;
  const app = proxyRoutes({
    runtime: state.runtime,
    listener: {
      name, proto: listener.tls ? "https" : "http", idleSeconds: Math.ceil(listener.idle_timeout / 1000),
      forwardClientCert: listener.tls?.client_auth?.forward_client_cert,
    },
    draining: () => state.draining,
    guard: compileGuard(listener),
    connectionOf: connections && ((request, server) => connections.get(server.requestIP(request))),
  }, listener.health_checks ? { ready: () => !state.draining } : undefined);
  const serve = (options: { hostname: string; port: number; reusePort: boolean; tls?: TLSOptions[] }) => Bun.serve<WebSocketSession>({
    ...options,
    idleTimeout: Math.ceil(listener.idle_timeout / 1000),
    maxRequestBodySize: listener.max_request_body,
    development: false,
    fetch: app,
    websocket: websocketHandlers,
    error: onServerError,
  });
  const serverPending = (s: Server<WebSocketSession>) => s.pendingRequests + s.pendingWebSockets;

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
    /** Servers replaced by a rotation, until their last request or WebSocket is done. */
    const retired = new Set<Server<WebSocketSession>>();
    const prune = () => {
      for (const old of retired) if (serverPending(old) === 0) retired.delete(old);
    };
    handle = {
      name, port, url: server.url,
      pending() {
        prune();
        return [server, ...retired].reduce((n, s) => n + serverPending(s), 0);
      },
      stop(force) {
        for (const s of [server, ...retired]) void s.stop(force);
        handle.unwatch?.();
      },
      reloadTls: () => reloadWith((next) => {
        const fresh = serve({ hostname: listener.address, port, reusePort: true, tls: bunServeTls(next) });
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

/** Reloads a listener's certificates, logging what happened; a bad file keeps the old ones. */
export function reloadListenerTls(listener: ProxyListener): void {
  try {
    if (listener.reloadTls() === "reloaded") logTls({ msg: "tls certificates reloaded", listener: listener.name });
  } catch (e) {
    const problems = e instanceof TlsFileError ? e.problems : [String(e)];
    logTls({ level: "error", msg: "tls files rejected; the certificates in force stay", listener: listener.name, problems });
  }
}

/** With `idle_timeout: 0`, a TLS handshake at the front must still finish within this. */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

function urlHost(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
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
