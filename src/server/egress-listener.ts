/**
 * Egress listeners (`mode: egress`): a forward proxy for the local service's outbound traffic.
 * Bun.serve cannot be one — it routes an absolute-form target by its Host header and drops the
 * target's authority, and cannot tunnel a CONNECT — so this listener is Bun's node:http server,
 * which keeps the request target as sent (`req.url`), hands CONNECT over with its socket and the
 * bytes already read, frames bodies, and refuses smuggling-prone messages itself (all measured on
 * Bun 1.4.5).
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Listener } from "../config/schema.ts";
import { sendError, forwardHttp } from "../egress/http.ts";
import type { EgressOptions } from "../egress/options.ts";
import { compilePolicy } from "../egress/policy.ts";
import { type EgressKind, finishRecord, newRecord } from "../egress/record.ts";
import { openTunnel } from "../egress/tunnel.ts";
import { errors } from "../util/errors.ts";
import { requestIdFrom } from "../proxy/headers.ts";
import { clientAborted } from "../proxy/outcome.ts";
import type { ServerState } from "./listener.ts";

export interface EgressListener {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** Requests in flight and tunnels open. */
  active(): number;
  /** Stops accepting; `force` also closes every connection still open. */
  stop(force: boolean): void;
}

function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  return headers;
}

function recordFor(kind: EgressKind, req: IncomingMessage, listener: string) {
  const headers = headersOf(req);
  return newRecord(kind, { requestId: requestIdFrom(headers), listener, clientIp: req.socket.remoteAddress ?? "", method: req.method ?? "", headers });
}

function logCrash(listener: string, requestId: string, e: unknown): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), level: "error", msg: "egress handler crashed", listener, request_id: requestId, error: String(e) }));
}

export async function startEgressListener(listener: Listener, index: number, state: ServerState): Promise<EgressListener> {
  const name = listener.name ?? `listener-${index}`;
  const config = listener.egress!;
  const options: EgressOptions = {
    listener: name, config, policy: compilePolicy(config.allow), maxBody: listener.max_request_body,
    accessLog: () => state.runtime.current.accessLog,
  };
  const sockets = new Set<Socket | Duplex>();
  let active = 0;
  const server = createServer();
  server.keepAliveTimeout = listener.idle_timeout;
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("request", (req, res) => {
    const record = recordFor("http", req, name);
    active++;
    res.on("close", () => {
      active--;
      if (!res.writableFinished) record.error ??= clientAborted(); // the client left before the answer ended
      finishRecord(record, options.accessLog());
    });
    if (state.draining) return sendError(res, record, errors.draining());
    forwardHttp(req, res, record, options).catch((e: unknown) => {
      logCrash(name, record.requestId, e);
      sendError(res, record, errors.internal());
    });
  });
  server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket);
    active++;
    socket.on("close", () => {
      sockets.delete(socket);
      active--;
    });
    const record = recordFor("connect", req, name);
    record.host = req.url ?? "";
    if (state.draining) {
      socket.end("HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      record.status = 503;
      record.error = errors.draining();
      return finishRecord(record, options.accessLog());
    }
    openTunnel(req, socket, head, record, options).catch((e: unknown) => {
      logCrash(name, record.requestId, e);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listener.port, listener.address, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    url: `http://${listener.address}:${port}/`,
    active: () => active,
    stop(force) {
      server.close();
      server.closeIdleConnections(); // idle keep-alive clients would otherwise hold the drain
      if (force) for (const s of sockets) s.destroy();
    },
  };
}
