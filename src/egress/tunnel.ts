/**
 * CONNECT tunnels through the egress proxy (RFC 9110 §9.3.6): the destination is checked, a TCP
 * connection is made to the chosen address within the connect timeout, then bytes are piped both
 * ways with backpressure (a slow reader on one side pauses the other) until either side closes or
 * no byte has moved for the idle timeout.
 */
import type { IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { metrics } from "../observe/metrics.ts";
import { Deadlines } from "../proxy/deadlines.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { chooseAddress } from "./destination.ts";
import type { EgressOptions } from "./options.ts";
import { parseAuthority } from "./policy.ts";
import { type EgressRecord, finishRecord } from "./record.ts";

const REASONS: Record<number, string> = { 400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 504: "Gateway Timeout" };

/** Answers the CONNECT with an error (JSON, as every proxy-made error) and closes the connection. */
function refuse(client: Duplex, record: EgressRecord, error: SwitchyardError, options: EgressOptions): void {
  if (record.logged) return;
  record.error = error;
  record.status = error.status;
  const body = JSON.stringify({ error: error.code, message: error.message, request_id: record.requestId });
  client.end(
    `HTTP/1.1 ${error.status} ${REASONS[error.status] ?? "Error"}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-request-id: ${record.requestId}\r\nconnection: close\r\n\r\n${body}`,
  );
  finishRecord(record, options.accessLog());
}

const open = new Map<string, number>();

function countTunnel(listener: string, by: number): void {
  const n = (open.get(listener) ?? 0) + by;
  open.set(listener, n);
  metrics.egressTunnels.set([listener], n);
}

export async function openTunnel(req: IncomingMessage, client: Duplex, head: Buffer, record: EgressRecord, options: EgressOptions): Promise<void> {
  client.on("error", () => {}); // a reset client is handled by close below
  const target = parseAuthority(req.url ?? "");
  record.host = req.url ?? "";
  if (target === undefined) return refuse(client, record, new SwitchyardError({ code: "egress_bad_target", status: 400, source: "client", message: "CONNECT needs host:port" }), options);
  const { timeouts } = options.config;
  const address = await chooseAddress(options.policy, target, timeouts.connect, options.resolve);
  if (address instanceof SwitchyardError) return refuse(client, record, address, options);
  if (client.destroyed) {
    record.error = errors.clientTimeout();
    return finishRecord(record, options.accessLog());
  }
  record.endpoint = { address: `${address.includes(":") ? `[${address}]` : address}:${target.port}` };
  record.attempt = 1;
  record.upstreamStartedAt = performance.now();

  const upstream: Socket = connect({ host: address, port: target.port });
  const connectTimer = setTimeout(() => {
    upstream.destroy();
    refuse(client, record, errors.connectTimeout(), options);
  }, timeouts.connect);
  upstream.on("error", (e) => {
    clearTimeout(connectTimer);
    if (record.logged) return;
    if (record.status === undefined) refuse(client, record, SwitchyardError.from(e), options);
    else {
      record.error ??= SwitchyardError.from(e);
      client.destroy();
    }
  });
  upstream.once("connect", () => {
    clearTimeout(connectTimer);
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    record.upstreamHeadersAt = performance.now();
    record.status = 200;
    countTunnel(record.listener.name, 1);
    const idle = new Deadlines(0, timeouts.idle);
    idle.signal.addEventListener("abort", () => {
      record.error ??= errors.idleTimeout();
      upstream.destroy();
      client.destroy();
    });
    let closed = 0;
    const onClose = (other: Duplex) => () => {
      // One side gone: the other is ended too (what it still has to write is flushed first); the
      // idle timer destroys it if it lingers.
      if (++closed < 2) return void other.end();
      idle.clear();
      countTunnel(record.listener.name, -1);
      finishRecord(record, options.accessLog());
    };
    upstream.on("close", onClose(client));
    client.on("close", onClose(upstream));
    client.on("data", (chunk: Buffer) => {
      record.bytesIn += chunk.byteLength;
      idle.touch();
    });
    upstream.on("data", (chunk: Buffer) => {
      record.bytesOut += chunk.byteLength;
      idle.touch();
    });
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.byteLength > 0) {
      record.bytesIn += head.byteLength;
      upstream.write(head);
    }
    // pipe() pauses the faster side while the slower one's buffer is full (measured: 200 MB
    // through a slow reader kept RSS flat).
    upstream.pipe(client);
    client.pipe(upstream);
  });
}

/** Tunnels open on `listener`. */
export function openTunnels(listener: string): number {
  return open.get(listener) ?? 0;
}
