/**
 * WebSocket proxying (RFC 6455) with Bun's native upgrade: the upstream socket is opened first,
 * so its chosen subprotocol can be given to the client, and a refusal becomes the client's status.
 * Backpressure both ways: when one side cannot take more, the other side's reads are paused.
 */
import type { ServerWebSocket, WebSocketHandler } from "bun";
import type { Endpoint } from "../upstream/cluster.ts";
import type { RoutedContext } from "./context.ts";
import { SwitchyardError } from "../util/errors.ts";
import { upstreamUrl } from "./forward.ts";
import { forwardedFor } from "./headers.ts";
import { XFCC, xfccValue } from "../security/client-identity.ts";
import { fail, log } from "./outcome.ts";

/** Bytes the upstream socket may hold unsent before the client is paused. */
const UPSTREAM_HIGH_WATER = 1024 * 1024;
const UPSTREAM_LOW_WATER = 256 * 1024;

export interface WebSocketSession {
  ctx: RoutedContext;
  upstream: WebSocket;
  /** Upstream messages that arrived before the client side was open. */
  early: (string | Buffer)[];
  client?: ServerWebSocket<WebSocketSession>;
  closed: boolean;
}

export function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

function handshakeHeaders(ctx: RoutedContext, traceparent: string): Record<string, string> {
  const out: Record<string, string> = {};
  const h = ctx.request.headers;
  for (const name of ctx.route.config.websocket_headers) {
    const v = h.get(name);
    if (v !== null) out[name.toLowerCase()] = v;
  }
  if (!ctx.cluster.config.trusted) {
    delete out.authorization;
    delete out.cookie;
  }
  if (!ctx.trustedPeer) delete out[XFCC];
  out["x-forwarded-for"] = forwardedFor(h, ctx.peerIp, ctx.trustedPeer);
  out["x-forwarded-proto"] = ctx.listener.proto === "https" ? "wss" : "ws";
  out["x-forwarded-host"] = ctx.host;
  out["x-request-id"] = ctx.requestId;
  out.traceparent = traceparent;
  // An mTLS listener with `forward_client_cert: set` states its verified one instead (as forward.ts does).
  if (ctx.clientCert !== undefined && ctx.listener.forwardClientCert === "set") out[XFCC] = xfccValue(ctx.clientCert);
  if (ctx.route.hostRewrite !== undefined) out.host = ctx.route.hostRewrite;
  const filters = ctx.route.filters;
  if (filters === undefined || filters.upstreamRequest.length === 0) return out;
  // The route's filters (forwarded claims, client-certificate headers …) apply to the handshake too.
  const headers = new Headers(out);
  for (const f of filters.upstreamRequest) f.onUpstreamRequest!(ctx, headers);
  return Object.fromEntries(headers);
}

/** Close codes that may not be sent on the wire (RFC 6455 §7.4.1) map to ones that may. */
function sendableCode(code: number, abrupt: number): number | undefined {
  if (code === 1005) return undefined;
  if (code === 1006 || code === 1015) return abrupt;
  if (code === 1000 || (code >= 1001 && code <= 1014 && code !== 1004) || (code >= 3000 && code <= 4999)) return code;
  return 1011;
}

function openUpstream(ctx: RoutedContext, endpoint: Endpoint, traceparent: string): Promise<{ upstream: WebSocket; early: (string | Buffer)[] }> {
  const offered = ctx.request.headers.get("sec-websocket-protocol");
  const protocols = offered ? offered.split(",").map((p) => p.trim()).filter(Boolean) : [];
  const upstream = new WebSocket(upstreamUrl(ctx, endpoint, "ws"), {
    headers: handshakeHeaders(ctx, traceparent),
    protocols,
    tls: endpoint.tls,
  } as unknown as string[]);
  const early: (string | Buffer)[] = [];
  // Held only until the client side opens: its `open` handler replaces this handler.
  upstream.onmessage = (e) => early.push(e.data as string | Buffer);
  const timeoutMs = ctx.cluster.config.timeouts.connect || 30_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      upstream.terminate?.();
      reject(new SwitchyardError({ code: "upstream_connect_timeout", status: 504, source: "upstream", message: "the upstream WebSocket handshake did not complete in time" }));
    }, timeoutMs);
    upstream.addEventListener("open", () => {
      clearTimeout(timer);
      resolve({ upstream, early });
    }, { once: true });
    upstream.addEventListener("error", (e) => {
      clearTimeout(timer);
      const message = (e as ErrorEvent).message ?? "";
      const refused = /Expected 101 status code: (\d{3})/.exec(message);
      if (refused) {
        const status = Number(refused[1]);
        reject(new SwitchyardError({
          code: "upstream_refused_upgrade", status: status >= 400 ? status : 502, source: "upstream",
          message: `the upstream refused the WebSocket upgrade with status ${status}`,
        }));
      } else {
        reject(SwitchyardError.from(Object.assign(new Error(message), { code: /refused/i.test(message) ? "ECONNREFUSED" : undefined })));
      }
    }, { once: true });
  });
}

export async function proxyWebSocket(ctx: RoutedContext, endpoint: Endpoint): Promise<Response> {
  let opened: Awaited<ReturnType<typeof openUpstream>>;
  ctx.upstreamStartedAt = performance.now();
  // The handshake's client span lasts as long as the session (it ends in the log phase).
  const span = ctx.span === undefined ? undefined : ctx.span.startClient(endpoint, ctx.method, 0);
  try {
    opened = await openUpstream(ctx, endpoint, span?.traceparent ?? ctx.traceparent);
  } catch (e) {
    const error = SwitchyardError.from(e);
    span?.settle(error.code === "upstream_refused_upgrade" ? error.status : undefined, error.code);
    span?.end();
    return fail(ctx, error);
  }
  span?.settle(101, undefined);
  ctx.upstreamHeadersAt = performance.now();
  const { upstream, early } = opened;
  const headers: Record<string, string> = { "x-request-id": ctx.requestId };
  if (upstream.protocol) headers["sec-websocket-protocol"] = upstream.protocol;
  const session: WebSocketSession = { ctx, upstream, early, closed: false };
  if (!ctx.server.upgrade(ctx.request, { data: session, headers })) {
    upstream.close(1011, "client upgrade failed");
    return fail(ctx, new SwitchyardError({ code: "bad_upgrade", status: 400, source: "client", message: "the WebSocket upgrade request is not valid" }));
  }
  ctx.status = 101;
  return new Response(null);
}

function sizeOf(data: string | Buffer | ArrayBuffer): number {
  return typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
}

function finish(session: WebSocketSession): void {
  if (session.closed) return;
  session.closed = true;
  log(session.ctx);
}

/** Bun.serve's `websocket` option for every proxy listener. */
export const websocketHandlers: WebSocketHandler<WebSocketSession> = {
  backpressureLimit: 4 * 1024 * 1024,
  closeOnBackpressureLimit: true,
  sendPings: true,
  open(ws) {
    const session = ws.data;
    const { upstream, ctx } = session;
    session.client = ws;
    const toClient = (data: string | Buffer) => {
      ctx.bytesOut += sizeOf(data);
      // -1: queued under backpressure → stop reading upstream until drain; 0: dropped (closing).
      if (ws.send(data) === -1) upstream.pause();
    };
    upstream.onmessage = (e) => toClient(e.data as string | Buffer);
    for (const m of session.early.splice(0)) toClient(m);
    upstream.addEventListener("ping", (e) => ws.ping((e as MessageEvent).data as Buffer));
    upstream.addEventListener("pong", (e) => ws.pong((e as MessageEvent).data as Buffer));
    upstream.addEventListener("close", (e) => {
      if (ws.readyState === 1) ws.close(sendableCode(e.code, 1014), e.reason);
      finish(session);
    });
  },
  message(ws, message) {
    const { upstream, ctx } = ws.data;
    ctx.bytesIn += sizeOf(message);
    if (upstream.readyState !== WebSocket.OPEN) return;
    upstream.send(message);
    if (upstream.bufferedAmount > UPSTREAM_HIGH_WATER && !ws.isPaused) {
      ws.pause();
      const poll = setInterval(() => {
        if (upstream.readyState !== WebSocket.OPEN || upstream.bufferedAmount < UPSTREAM_LOW_WATER) {
          clearInterval(poll);
          if (ws.readyState === 1) ws.resume();
        }
      }, 5);
    }
  },
  drain(ws) {
    ws.data.upstream.resume();
  },
  ping(ws, data) {
    if (ws.data.upstream.readyState === WebSocket.OPEN) ws.data.upstream.ping(data);
  },
  pong(ws, data) {
    if (ws.data.upstream.readyState === WebSocket.OPEN) ws.data.upstream.pong(data);
  },
  close(ws, code, reason) {
    const { upstream } = ws.data;
    if (upstream.readyState === WebSocket.OPEN || upstream.readyState === WebSocket.CONNECTING) {
      const c = sendableCode(code, 1001);
      if (c === undefined) upstream.close();
      else upstream.close(c, reason);
    }
    finish(ws.data);
  },
};
