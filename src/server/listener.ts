/** The only module (with routes/) that touches Bun.serve for the proxy and admin listeners. */
import type { Server } from "bun";
import { adminRoutes } from "../../routes/admin.ts";
import { proxyRoutes } from "../../routes/proxy.ts";
import type { Config, Listener } from "../config/schema.ts";
import { errorResponse, errors } from "../proxy/errors.ts";
import { type WebSocketSession, websocketHandlers } from "../proxy/websocket.ts";
import type { ApplyConfig, RuntimeRef } from "../runtime/runtime-ref.ts";
import { compileGuard } from "../security/guard.ts";

export interface ServerState {
  runtime: RuntimeRef;
  draining: boolean;
  /** Puts a validated config in force (a push through the admin API or the config service). */
  applyConfig?: ApplyConfig;
}

/** Last guard: Bun calls this if a handler throws; the process must never crash on a request. */
function onServerError(error: Error): Response {
  console.error(JSON.stringify({ level: "error", msg: "unhandled request error", error: String(error) }));
  return errorResponse(errors.internal(), crypto.randomUUID());
}

export function startProxyListener(listener: Listener, index: number, state: ServerState, reusePort = false): Server<WebSocketSession> {
  const app = proxyRoutes({
    runtime: state.runtime,
    listener: { name: listener.name ?? `listener-${index}`, proto: "http", idleSeconds: Math.ceil(listener.idle_timeout / 1000) },
    draining: () => state.draining,
    guard: compileGuard(listener),
  }, listener.health_checks ? { ready: () => !state.draining } : undefined);
  return Bun.serve<WebSocketSession>({
    hostname: listener.address,
    port: listener.port,
    idleTimeout: Math.ceil(listener.idle_timeout / 1000),
    maxRequestBodySize: listener.max_request_body,
    reusePort,
    development: false,
    fetch: (request, server) => app.fetch(request, server),
    websocket: websocketHandlers,
    error: onServerError,
  });
}

export function startAdminListener(config: NonNullable<Config["admin"]>, state: ServerState): Server<undefined> {
  const app = adminRoutes({ ready: () => !state.draining, runtime: state.runtime, token: config.token, applyConfig: (c, source, versionInfo) => state.applyConfig!(c, source, versionInfo) });
  return Bun.serve({
    hostname: config.address,
    port: config.port,
    development: false,
    fetch: (request, server) => app.fetch(request, server),
    error: onServerError,
  });
}
