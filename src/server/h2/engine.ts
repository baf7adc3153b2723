/**
 * The HTTP/2 side of a listener: a node:http2 server that the listener's front hands client
 * connections to (h2c by prior knowledge, or TLS with ALPN h2), each stream adapted to a Request
 * for the same handler Bun.serve calls for HTTP/1.1, and the per-connection limits of
 * `listeners[].http2` (config/protocols-schema.ts).
 *
 * Why node:http2 and not Bun.serve's own `http2: true` (measured on Bun 1.4.5, README: HTTP/2):
 * Bun.serve's HTTP/2 cannot send trailers (so no gRPC), and its limits cannot be configured
 * (256 streams, 16 KiB of headers); node:http2 under Bun has both, and its parser refuses the
 * malformed requests of RFC 9113 §8.2 itself (h2/request.ts). Bun.serve's is ~3× faster on
 * a bare "hello" (155k vs 60k req/s on h2load, 4×25 streams); behind the proxy's own work the
 * difference is what bench/h2.ts reports.
 */
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Duplex } from "node:stream";
import type { Http2Limits } from "../../config/protocols-schema.ts";
import type { RequestServer } from "../../proxy/context.ts";
import { type GrpcDownstream, registerDownstream } from "../../proxy/grpc/downstream.ts";
import { isGrpcContentType } from "../../util/grpc-status.ts";
import { errorResponse, errors, SwitchyardError } from "../../util/errors.ts";
import { asGrpcAnswer } from "./grpc-answer.ts";
import { streamDownstream } from "./grpc-downstream.ts";
import { H2_CANCEL, H2_ENHANCE_YOUR_CALM, toRequest } from "./request.ts";
import { writeResponse } from "./response.ts";

/** What the front knows of a client connection it hands over. */
export interface H2Connection {
  readonly clientIp: string;
  readonly clientPort: number;
  readonly family: string;
}

export type H2Handler = (request: Request, server: RequestServer) => Response | Promise<Response>;

export interface H2EngineOptions<C extends H2Connection> {
  readonly scheme: "http" | "https";
  readonly limits: Http2Limits;
  /** SETTINGS_MAX_HEADER_LIST_SIZE (bytes, RFC 7541 §4.1 counting); the request guard checks the listener's own limits after it. */
  readonly maxHeaderListSize: number;
  /** The listener's max_request_body (larger bodies: 413, or the stream reset once one passes it). */
  readonly maxRequestBody: number;
  /** A connection with no open stream for this long is closed (GOAWAY); 0 = never. */
  readonly idleTimeoutMs: number;
  /** Fields added to every answer unless it has them (Alt-Svc of an http3 listener). */
  readonly extraHeaders?: Readonly<Record<string, string>>;
  readonly handler: H2Handler;
}

export interface H2Engine<C extends H2Connection> {
  /** Serves HTTP/2 on a connection whose first bytes (the preface) have not been read, or were put back. */
  accept(socket: Duplex, connection: C): void;
  /** The connection a request of this engine came on. */
  connectionOf(request: Request): C | undefined;
  /** Streams in flight (for drain). */
  pending(): number;
  /** Connections open. */
  connections(): number;
  /** GOAWAY to every connection: open streams finish, no new ones start; with `force`, connections close now. */
  close(force: boolean): void;
}

/** One client connection's state. */
interface SessionState<C> {
  readonly connection: C;
  active: number;
  requests: number;
  /** Resets the client may still make in this window (token bucket). */
  resetTokens: number;
  resetRefilledAt: number;
  idle: Timer | undefined;
}

/** A stream behind a Request, for the RequestServer methods the pipeline calls. */
interface StreamOf<C> {
  readonly stream: ServerHttp2Stream;
  readonly connection: C;
}

export function createH2Engine<C extends H2Connection>(options: H2EngineOptions<C>): H2Engine<C> {
  const { limits } = options;
  const server = http2.createServer({
    settings: {
      maxConcurrentStreams: limits.max_concurrent_streams,
      maxHeaderListSize: options.maxHeaderListSize,
      initialWindowSize: limits.stream_window,
      enablePush: false,
    },
    maxHeaderListPairs: 1000,
  });
  const sessions = new Map<ServerHttp2Session, SessionState<C>>();
  const streams = new WeakMap<Request, StreamOf<C>>();
  let incoming: C | undefined;
  let pending = 0;

  /** What the pipeline calls on `ctx.server` (Bun.serve's methods, for a stream). */
  const requestServer: RequestServer = {
    requestIP(request) {
      const s = streams.get(request);
      return s === undefined ? null : { address: s.connection.clientIp, port: s.connection.clientPort, family: s.connection.family === "IPv6" ? "IPv6" : "IPv4" };
    },
    // Bun's per-connection idle timer becomes the stream's own (the slow-upload defence of forward.ts).
    timeout(request, seconds) {
      const stream = streams.get(request)?.stream;
      if (stream !== undefined) idleTimer(stream, seconds * 1000);
    },
    // RFC 8441 (WebSocket over HTTP/2) is not spoken: the pipeline answers the upgrade as refused.
    upgrade: () => false,
  };

  const armIdle = (session: ServerHttp2Session, state: SessionState<C>) => {
    if (options.idleTimeoutMs <= 0 || state.active > 0) return;
    clearTimeout(state.idle);
    state.idle = setTimeout(() => {
      if (state.active > 0 || session.closed) return;
      // GOAWAY; a stream still in its header block (never handed to us) gets one more period, then the connection goes.
      session.close();
      state.idle = setTimeout(() => session.destroy(), options.idleTimeoutMs);
      state.idle.unref();
    }, options.idleTimeoutMs);
    state.idle.unref();
  };

  /** Rapid reset (CVE-2023-44487): a client that cancels more streams than the window allows is sent away. */
  const clientReset = (session: ServerHttp2Session, state: SessionState<C>) => {
    const now = performance.now();
    const rate = limits.max_resets / limits.reset_window;
    state.resetTokens = Math.min(limits.max_resets, state.resetTokens + (now - state.resetRefilledAt) * rate);
    state.resetRefilledAt = now;
    state.resetTokens -= 1;
    if (state.resetTokens >= 0 || session.destroyed) return;
    session.goaway(H2_ENHANCE_YOUR_CALM);
    session.destroy();
  };

  server.on("session", (session: ServerHttp2Session) => {
    const connection = incoming ?? fromSocket(session) as C;
    incoming = undefined;
    const state: SessionState<C> = { connection, active: 0, requests: 0, resetTokens: limits.max_resets, resetRefilledAt: performance.now(), idle: undefined };
    sessions.set(session, state);
    session.on("error", () => {}); // a protocol error closes the session; "close" follows
    session.on("close", () => {
      clearTimeout(state.idle);
      sessions.delete(session);
    });
    armIdle(session, state);
  });

  server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on("error", () => {}); // resets and session errors reach "close"; an unhandled one would crash the process
    const session = stream.session as ServerHttp2Session | undefined;
    const state = session === undefined ? undefined : sessions.get(session);
    if (session === undefined || state === undefined) {
      stream.close(H2_CANCEL);
      return;
    }
    clearTimeout(state.idle);
    state.active++;
    pending++;
    state.requests++;
    // The connection's last request: GOAWAY now, its open streams finish (nginx's keepalive_requests).
    if (state.requests >= limits.max_requests) session.close();
    const abort = new AbortController();
    let answered = false;
    stream.on("aborted", () => {
      if (!answered) clientReset(session, state);
      abort.abort();
    });
    stream.on("close", () => {
      if (!abort.signal.aborted) abort.abort();
      state.active--;
      pending--;
      if (!session.closed) armIdle(session, state);
    });
    // A stream the client already reset (rapid reset) costs nothing more.
    if (stream.destroyed || stream.closed) return;
    const method = headers[":method"] ?? "GET";
    const request = toRequest(stream, headers, options.scheme, abort.signal, options.maxRequestBody);
    if (request instanceof SwitchyardError) {
      answered = true;
      void writeResponse(stream, errorResponse(request, crypto.randomUUID()), method, { connection: "close" });
      return;
    }
    streams.set(request, { stream, connection: state.connection });
    // A gRPC call may be answered on the stream itself, with trailers (proxy/grpc).
    const grpc = isGrpcContentType(headers["content-type"]) ? streamDownstream(stream) : undefined;
    if (grpc !== undefined) registerDownstream(request, grpc);
    void serve(request, stream, method, grpc).finally(() => (answered = true));
  });

  const serve = async (request: Request, stream: ServerHttp2Stream, method: string, grpc: GrpcDownstream | undefined): Promise<void> => {
    let response: Response;
    try {
      response = await options.handler(request, requestServer);
    } catch (e) {
      console.error(JSON.stringify({ level: "error", msg: "unhandled request error", error: String(e) }));
      response = errorResponse(errors.internal(), crypto.randomUUID());
    }
    if (grpc !== undefined) {
      // The native gRPC path wrote the answer itself, trailers included.
      if (grpc.claimed) return;
      // Anything else a gRPC client gets must be readable as a status (an HTTP 401 from an auth service, a CORS refusal).
      response = await asGrpcAnswer(response);
    }
    await writeResponse(stream, response, method, options.extraHeaders);
  };

  return {
    accept(socket, connection) {
      incoming = connection;
      server.emit("connection", socket);
      incoming = undefined;
    },
    connectionOf: (request) => streams.get(request)?.connection,
    pending: () => pending,
    connections: () => sessions.size,
    close(force) {
      for (const session of sessions.keys()) {
        if (force) session.destroy();
        else if (!session.closed) session.close();
      }
    },
  };
}

/** A stream's idle timer (RequestServer.timeout): armed again by every DATA frame the client sends. */
interface StreamIdle {
  ms: number;
  timer: Timer | undefined;
}

const streamIdle = new WeakMap<ServerHttp2Stream, StreamIdle>();

/** Resets the stream (CANCEL) when the client sends nothing on it for `ms`; 0 turns the timer off. */
function idleTimer(stream: ServerHttp2Stream, ms: number): void {
  if (stream.destroyed) return;
  let idle = streamIdle.get(stream);
  if (idle === undefined) {
    if (ms <= 0) return;
    const state: StreamIdle = { ms, timer: undefined };
    idle = state;
    streamIdle.set(stream, state);
    const arm = () => {
      clearTimeout(state.timer);
      if (state.ms > 0) state.timer = setTimeout(() => stream.close(H2_CANCEL), state.ms);
    };
    stream.on("data", arm);
    stream.once("close", () => clearTimeout(state.timer));
    arm();
    return;
  }
  idle.ms = ms;
  clearTimeout(idle.timer);
  if (ms > 0) idle.timer = setTimeout(() => stream.close(H2_CANCEL), ms);
}

/** A connection the front did not describe (not expected): its address as the socket reports it. */
function fromSocket(session: Http2Session): H2Connection {
  const socket = session.socket;
  return { clientIp: socket?.remoteAddress ?? "", clientPort: socket?.remotePort ?? 0, family: socket?.remoteFamily ?? "IPv4" };
}
