/**
 * HTTP/2 connections to upstream endpoints (node:http2 client sessions): h2c by prior knowledge
 * for http:// endpoints, h2 by ALPN for https:// ones, each multiplexing many streams. fetch cannot
 * be used here: it reads no trailers (gRPC) and speaks HTTP/2 only over TLS.
 *
 * Per endpoint (and TLS settings) a few sessions are kept: a stream goes to the least busy one
 * that is below the peer's SETTINGS_MAX_CONCURRENT_STREAMS, and a new session is opened only when
 * all are at it (measured: 256 concurrent gRPC calls to one endpoint use one connection). A
 * session that gets GOAWAY or an error takes no new streams; one idle for IDLE_MS closes.
 * One of the few places that open upstream connections (design.md: forward, websocket, health).
 */
import { createHash } from "node:crypto";
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from "node:http2";
import { errors, SwitchyardError } from "../util/errors.ts";
import type { UpstreamTlsOptions } from "./upstream-tls.ts";

/** What the pool needs of an endpoint. */
export interface H2Endpoint {
  readonly origin: string;
  readonly tls: UpstreamTlsOptions | undefined;
}

/** Sessions per endpoint at most (each carrying up to the peer's stream limit). */
const MAX_SESSIONS = 8;
/** A session without streams for this long is closed. */
const IDLE_MS = 60_000;
/** Until the peer's SETTINGS arrive (RFC 9113 §6.5.2 suggests assuming at least 100). */
const ASSUMED_MAX_STREAMS = 100;

interface Pooled {
  readonly session: ClientHttp2Session;
  readonly ready: Promise<void>;
  active: number;
  usable: boolean;
  idle: Timer | undefined;
}

const pools = new Map<string, Pooled[]>();
const keys = new WeakMap<H2Endpoint, string>();

function poolKey(endpoint: H2Endpoint): string {
  let key = keys.get(endpoint);
  if (key === undefined) {
    key = endpoint.tls === undefined ? endpoint.origin : `${endpoint.origin}#${createHash("sha256").update(JSON.stringify(endpoint.tls)).digest("hex").slice(0, 16)}`;
    keys.set(endpoint, key);
  }
  return key;
}

function limitOf(p: Pooled): number {
  return p.session.remoteSettings?.maxConcurrentStreams ?? ASSUMED_MAX_STREAMS;
}

function connect(endpoint: H2Endpoint, key: string, connectTimeoutMs: number): Pooled {
  const tls = endpoint.tls;
  const session = http2.connect(endpoint.origin, tls === undefined ? {} : {
    servername: tls.serverName, rejectUnauthorized: tls.rejectUnauthorized, ca: tls.ca, cert: tls.cert, key: tls.key,
  });
  const forget = () => {
    pooled.usable = false;
    clearTimeout(pooled.idle);
    const list = pools.get(key);
    if (list === undefined) return;
    const i = list.indexOf(pooled);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) pools.delete(key);
  };
  const ready = new Promise<void>((resolve, reject) => {
    const timer = connectTimeoutMs > 0 ? setTimeout(() => {
      forget();
      session.destroy();
      reject(errors.connectTimeout());
    }, connectTimeoutMs) : undefined;
    session.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    session.once("error", (e) => {
      clearTimeout(timer);
      reject(SwitchyardError.from(e));
    });
  });
  ready.catch(() => {});
  const pooled: Pooled = { session, ready, active: 0, usable: true, idle: undefined };
  session.on("error", forget);
  session.on("goaway", forget); // open streams finish; new ones go elsewhere
  session.on("close", forget);
  session.unref(); // a pooled connection never keeps the process alive
  return pooled;
}

/**
 * Opens a stream to `endpoint` with `headers` (pseudo-headers included). Rejects with a
 * SwitchyardError when no connection can be made (refused, TLS, connect timeout).
 */
export async function openStream(endpoint: H2Endpoint, headers: OutgoingHttpHeaders, connectTimeoutMs: number): Promise<{ stream: ClientHttp2Stream; reused: boolean }> {
  const key = poolKey(endpoint);
  let list = pools.get(key);
  if (list === undefined) pools.set(key, (list = []));
  let best: Pooled | undefined;
  for (const p of list) {
    if (!p.usable || p.session.closed || p.session.destroyed || p.active >= limitOf(p)) continue;
    if (best === undefined || p.active < best.active) best = p;
  }
  const reused = best !== undefined;
  if (best === undefined) {
    if (list.length < MAX_SESSIONS) {
      best = connect(endpoint, key, connectTimeoutMs);
      list.push(best);
    } else {
      // All sessions at the peer's limit: the least busy one queues the stream.
      best = list.reduce((a, b) => (b.active < a.active ? b : a));
    }
  }
  const pooled = best;
  pooled.active++;
  clearTimeout(pooled.idle);
  try {
    await pooled.ready;
    const stream = pooled.session.request(headers, { endStream: false });
    stream.once("close", () => release(pooled));
    return { stream, reused };
  } catch (e) {
    release(pooled);
    throw SwitchyardError.from(e);
  }
}

function release(pooled: Pooled): void {
  pooled.active--;
  if (pooled.active > 0 || !pooled.usable) return;
  clearTimeout(pooled.idle);
  pooled.idle = setTimeout(() => {
    if (pooled.active === 0) pooled.session.close();
  }, IDLE_MS);
  pooled.idle.unref();
}

/** Connections open now (for tests and the upstream-connection measurements). */
export function pooledSessions(): number {
  let n = 0;
  for (const list of pools.values()) n += list.length;
  return n;
}

/** Closes every pooled connection (tests). */
export function closeAllSessions(): void {
  for (const list of [...pools.values()]) for (const p of [...list]) p.session.destroy();
  pools.clear();
}
