/**
 * HTTP/3 for a TLS listener: Bun.serve with `http3: true, http1: false` listens on UDP only, on
 * the same port number as the listener's TCP side (measured: it binds no TCP socket, so it
 * coexists with Bun.serve's or a front's TCP listener). Its own handler marks the requests as
 * HTTP/3 (Bun does not show a request's version), and the TCP side advertises it with Alt-Svc.
 *
 * What HTTP/3 cannot do here: trailers (so no native gRPC: gRPC clients use HTTP/2), WebSockets
 * (RFC 9220), client certificates that a handler could read (listeners with client_auth refuse
 * http3 in the config).
 */
import type { Server } from "bun";
import type { ProxyHandler } from "../../routes/proxy.ts";
import type { Listener } from "../config/schema.ts";
import type { WebSocketSession } from "../proxy/websocket.ts";
import type { ListenerTlsMaterial } from "../security/tls-files.ts";
import { GrpcStatus, grpcErrorResponse, isGrpcContentType } from "../util/grpc-status.ts";
import { bunServeTls } from "./tls.ts";

/** How long clients may remember the HTTP/3 endpoint (RFC 7838 `ma`), as Bun's own Alt-Svc says. */
const ALT_SVC_MAX_AGE = 86_400;

export function altSvcValue(port: number): string {
  return `h3=":${port}"; ma=${ALT_SVC_MAX_AGE}`;
}

export interface QuicServer {
  /** Requests in flight (for drain). */
  pending(): number;
  stop(force: boolean): void;
  /** New certificates: a new server on the same port (reusePort), the old one stops gracefully. */
  reload(material: ListenerTlsMaterial): void;
}

export function startQuic(listener: Listener, material: ListenerTlsMaterial, port: number, handler: ProxyHandler): QuicServer {
  const serve = (m: ListenerTlsMaterial) => Bun.serve<WebSocketSession>({
    hostname: listener.address,
    port,
    reusePort: true,
    http3: true,
    http1: false,
    tls: bunServeTls(m),
    idleTimeout: Math.ceil(listener.idle_timeout / 1000),
    maxRequestBodySize: listener.max_request_body,
    development: false,
    // gRPC needs trailers, which Bun.serve cannot send: a gRPC call over HTTP/3 gets a status it can
    // read (trailers-only, which is headers only) instead of an answer its client would misread.
    fetch: (request, server) => isGrpcContentType(request.headers.get("content-type"))
      ? grpcErrorResponse(GrpcStatus.UNIMPLEMENTED, "gRPC over HTTP/3 is not supported by this proxy (no trailers); use HTTP/2", "")
      : handler(request, server),
    error(error) {
      console.error(JSON.stringify({ level: "error", msg: "unhandled request error", error: String(error) }));
      return new Response(null, { status: 500 });
    },
  });
  let server = serve(material);
  const retired = new Set<Server<WebSocketSession>>();
  const prune = () => {
    for (const old of retired) if (old.pendingRequests === 0) retired.delete(old);
  };
  return {
    pending() {
      prune();
      let n = server.pendingRequests;
      for (const old of retired) n += old.pendingRequests;
      return n;
    },
    stop(force) {
      for (const s of [server, ...retired]) void s.stop(force);
    },
    reload(next) {
      const fresh = serve(next);
      prune();
      retired.add(server);
      void server.stop(false);
      server = fresh;
    },
  };
}

/** The handler with Alt-Svc added to its answers (those that do not set one): for the TCP side of an HTTP/3 listener. */
export function withAltSvc(handler: ProxyHandler, altSvc: { value: string }): ProxyHandler {
  const add = (response: Response): Response => {
    try {
      if (!response.headers.has("alt-svc")) response.headers.set("alt-svc", altSvc.value);
    } catch {
      // immutable headers (Response.error()): left as they are
    }
    return response;
  };
  return (request, server) => {
    const answer = handler(request, server);
    return answer instanceof Response ? add(answer) : answer.then(add);
  };
}
