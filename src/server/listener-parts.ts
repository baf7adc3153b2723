/**
 * What every kind of proxy listener shares (server/listener.ts, server/h2-listener.ts): its
 * handler's options, its HTTP/1.x Bun.serve, and the handle main.ts drains and reloads.
 */
import type { Server, TLSOptions } from "bun";
import type { HealthOptions } from "../../routes/health.ts";
import type { ProxyHandler, ProxyRouteOptions } from "../../routes/proxy.ts";
import type { Listener } from "../config/schema.ts";
import { type WebSocketSession, websocketHandlers } from "../proxy/websocket.ts";
import type { ApplyConfig, RuntimeRef } from "../runtime/runtime-ref.ts";
import { compileGuard } from "../security/guard.ts";
import { errorResponse, errors } from "../util/errors.ts";
import { TlsFileError } from "../security/tls-files.ts";
import type { FrontConnections } from "./mtls-front.ts";
import { logTls } from "./tls.ts";
import type { FleetReader } from "../../routes/fleet.ts";
import type { RolloutController } from "../rollout/controller.ts";

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
export function onServerError(error: Error): Response {
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

/** The options of a listener's proxy handler (what routes/proxy.ts needs to know of it). */
export function routeOptions(listener: Listener, name: string, state: ServerState, connections: FrontConnections | undefined): ProxyRouteOptions {
  return {
    runtime: state.runtime,
    listener: {
      name, proto: listener.tls ? "https" : "http", idleSeconds: Math.ceil(listener.idle_timeout / 1000),
      forwardClientCert: listener.tls?.client_auth?.forward_client_cert,
    },
    draining: () => state.draining,
    guard: compileGuard(listener),
    connectionOf: connections && ((request, server) => connections.get(server.requestIP(request))),
  };
}

/** GET /healthz and /readyz on the listener itself, when it answers them. */
export function healthOf(listener: Listener, state: ServerState): HealthOptions | undefined {
  return listener.health_checks ? { ready: () => !state.draining } : undefined;
}

/** Bun.serve for one listener's HTTP/1.x side (on its port, or on loopback behind a front). */
export function serveHttp1(listener: Listener, app: ProxyHandler, options: { hostname: string; port: number; reusePort: boolean; tls?: TLSOptions[] }): Server<WebSocketSession> {
  return Bun.serve<WebSocketSession>({
    ...options,
    idleTimeout: Math.ceil(listener.idle_timeout / 1000),
    maxRequestBodySize: listener.max_request_body,
    development: false,
    fetch: app,
    websocket: websocketHandlers,
    error: onServerError,
  });
}

export const serverPending = (s: Server<WebSocketSession>) => s.pendingRequests + s.pendingWebSockets;

/** With `idle_timeout: 0`, a TLS handshake at the front must still finish within this. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export function urlHost(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
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

