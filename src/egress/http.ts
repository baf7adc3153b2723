/**
 * Absolute-form HTTP through the egress proxy (`GET http://host:port/path HTTP/1.1`, RFC 9112
 * §3.2.2): the destination is checked, then the request goes to the chosen address with the
 * target's authority as Host, hop-by-hop fields removed both ways, bodies streamed with
 * backpressure, under the connect, idle and request timeouts.
 */
import { canonicalHostName } from "../security/host.ts";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Deadlines } from "../proxy/deadlines.ts";
import { errors, SwitchyardError } from "../util/errors.ts";
import { guardConnect, PASS_THROUGH } from "../proxy/forward.ts";
import { stripHopByHop } from "../proxy/headers.ts";
import { clientAborted } from "../proxy/outcome.ts";
import { chooseAddress } from "./destination.ts";
import type { EgressOptions } from "./options.ts";
import type { EgressRecord } from "./record.ts";
import { drained } from "../util/drained.ts";

const badTarget = (message: string) => new SwitchyardError({ code: "egress_bad_target", status: 400, source: "client", message });

/** A JSON error answer (the proxy's usual shape), unless the response has already started. */
export function sendError(res: ServerResponse, record: EgressRecord, error: SwitchyardError): void {
  record.error = error;
  if (res.headersSent) {
    res.destroy(); // cut: the client sees an incomplete response, never a complete-looking one
    return;
  }
  record.status = error.status;
  const body = JSON.stringify({ error: error.code, message: error.message, request_id: record.requestId });
  res.writeHead(error.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-request-id": record.requestId, "cache-control": "no-store" });
  res.end(body);
}

/** The request's body as a stream (pulled on demand), counted and feeding the idle timer; bounded by `max` bytes. */
function requestBody(req: IncomingMessage, record: EgressRecord, deadlines: Deadlines, max: number): ReadableStream<Uint8Array> {
  const chunks = req[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await chunks.next();
      if (done) return controller.close();
      record.bytesIn += value.byteLength;
      if (record.bytesIn > max) {
        const error = errors.tooLarge(`the request body is over ${max} bytes`);
        deadlines.fail(error);
        return controller.error(error);
      }
      deadlines.touch();
      controller.enqueue(new Uint8Array(value));
    },
    cancel() {
      req.destroy();
    },
  }, { highWaterMark: 0 });
}

export async function forwardHttp(req: IncomingMessage, res: ServerResponse, record: EgressRecord, options: EgressOptions): Promise<void> {
  const raw = req.url ?? "";
  if (raw.startsWith("/")) return sendError(res, record, badTarget("this is an egress proxy: send an absolute-form target (GET http://host/path) or CONNECT host:port"));
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return sendError(res, record, badTarget("the request target is not a valid URL"));
  }
  record.host = url.host;
  record.path = url.pathname;
  record.query = url.search.slice(1);
  if (url.protocol !== "http:") return sendError(res, record, badTarget(`only http:// targets are forwarded (for ${url.protocol}// use CONNECT)`));
  if (url.username !== "" || url.password !== "") return sendError(res, record, badTarget("credentials in the target URL are refused"));
  // As parseAuthority has it for CONNECT (URL has lower-cased it): no brackets, no trailing dot,
  // so `api.example.com.` is the name a rule allows.
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : canonicalHostName(url.hostname);
  const target = { host, port: url.port === "" ? 80 : Number(url.port) };
  const { timeouts } = options.config;
  const address = await chooseAddress(options.policy, target, timeouts.connect, options.resolve);
  if (address instanceof SwitchyardError) return sendError(res, record, address);
  record.endpoint = { address: `${address.includes(":") ? `[${address}]` : address}:${target.port}` };
  record.attempt = 1;

  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  stripHopByHop(headers);
  headers.set("host", url.host); // RFC 9112 §3.2.2: the target's authority, whatever Host said

  const deadlines = new Deadlines(timeouts.request, timeouts.idle);
  res.on("close", () => {
    if (!res.writableFinished) deadlines.fail(clientAborted());
  });
  const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;
  if (Number(req.headers["content-length"] ?? 0) > options.maxBody) return sendError(res, record, errors.tooLarge(`the request body is over ${options.maxBody} bytes`));
  const stopGuard = guardConnect({ hostname: address, port: target.port, lastResponseAt: Number.NEGATIVE_INFINITY }, timeouts.connect, deadlines);
  record.upstreamStartedAt = performance.now();
  let upstream: Response;
  try {
    upstream = await fetch(`http://${record.endpoint.address}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body: hasBody ? requestBody(req, record, deadlines, options.maxBody) : undefined,
      ...PASS_THROUGH,
      signal: deadlines.signal,
    } as RequestInit);
  } catch (e) {
    deadlines.clear();
    return sendError(res, record, SwitchyardError.from(deadlines.signal.aborted ? deadlines.signal.reason : e));
  } finally {
    stopGuard();
  }
  record.upstreamHeadersAt = performance.now();
  record.status = upstream.status;
  const out = upstream.headers;
  stripHopByHop(out);
  const cookies = out.getSetCookie();
  out.delete("set-cookie");
  res.statusCode = upstream.status;
  if (upstream.statusText !== "") res.statusMessage = upstream.statusText;
  for (const [name, value] of out) res.setHeader(name, value);
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  res.setHeader("x-request-id", record.requestId);
  try {
    if (upstream.body !== null && req.method !== "HEAD") {
      for await (const chunk of upstream.body) {
        record.bytesOut += chunk.byteLength;
        deadlines.touch();
        if (!res.write(chunk)) await drained(res);
        if (res.destroyed) throw clientAborted();
      }
    }
    res.end();
  } catch (e) {
    upstream.body?.cancel().catch(() => {});
    sendError(res, record, SwitchyardError.from(deadlines.signal.reason ?? e));
  } finally {
    deadlines.clear();
  }
}
