/**
 * The floor with the requirements: the per-request work every Switchyard request must do
 * by spec (issue 2), written as tightly as one function allows — and nothing else: no routing,
 * config, ctx object, filters, access log or metrics. The gap minimal → floor is what the required
 * behaviour itself costs in this Bun; the gap floor → switchyard is what our pipeline adds.
 *
 *   BUN_CONFIG_MAX_HTTP_REQUESTS=65535 bun bench/floor-proxy.ts PORT UPSTREAM_ORIGIN
 *
 * Per request, as Switchyard does it: the peer address (X-Forwarded-For), a request id (kept
 * only from trusted peers: here, made), a traceparent kept or started, hop-by-hop fields removed
 * both ways (and the forwarding fields a client could forge), X-Request-Id echoed, a request
 * timeout and an idle timeout (one timer, aborting fetch), the client leaving aborts the upstream
 * request, Bun's idle timer off during the exchange and back on after, a small fixed-length
 * answer read whole (its length kept and a cut one turned into a 502), larger or unsized ones
 * streamed with their end watched. HTTP only (the WebSocket scenario uses the minimal proxy's
 * shape: there is no per-message requirement beyond forwarding). The header work uses Switchyard's
 * own helpers (which fields, how a traceparent is kept or started), so the two cannot drift apart.
 */
import type { Server } from "bun";
import { stripHopByHop, traceparentFrom } from "../src/proxy/headers.ts";
import { REMOVABLE_REQUEST_FIELDS } from "../src/security/header-fields.ts";

const port = Number(process.argv[2] ?? 0);
const upstream = (process.argv[3] ?? "").replace(/\/$/, "");
if (!/^http:\/\/[^/]+$/.test(upstream)) {
  console.error("usage: bun bench/floor-proxy.ts PORT http://HOST:PORT");
  process.exit(2);
}

const REQUEST_MS = 60_000;
const IDLE_MS = 60_000;
const LISTENER_IDLE_S = 30;
const SMALL = 64 * 1024;
function badGateway(id: string): Response {
  return Response.json({ error: "upstream_reset", request_id: id }, { status: 502, headers: { "x-request-id": id } });
}

async function handle(request: Request, server: Server<undefined>): Promise<Response> {
  const url = request.url;
  const slash = url.indexOf("/", url.indexOf("://") + 3);
  const host = url.slice(url.indexOf("://") + 3, slash);
  const id = crypto.randomUUID();
  const peer = server.requestIP(request)?.address ?? "";
  server.timeout(request, 0);
  const headers = new Headers(request.headers);
  // As Switchyard's guard does: one look at the names, the deletes only when one is there.
  let removable = false;
  request.headers.forEach((_, name) => {
    if (REMOVABLE_REQUEST_FIELDS.has(name)) removable = true;
  });
  if (removable) {
    stripHopByHop(headers);
    for (const name of REMOVABLE_REQUEST_FIELDS) headers.delete(name);
  }
  headers.set("x-forwarded-for", peer);
  headers.set("x-forwarded-proto", "http");
  headers.set("x-forwarded-host", host);
  headers.set("x-request-id", id);
  headers.set("traceparent", traceparentFrom(request.headers));

  const controller = new AbortController();
  const started = performance.now();
  let last = started;
  let timer: Timer | undefined;
  const expire = () => {
    const now = performance.now();
    if (now - started >= REQUEST_MS - 1 || now - last >= IDLE_MS - 1) controller.abort();
    else timer = setTimeout(expire, Math.min(REQUEST_MS - (now - started), IDLE_MS - (now - last)));
  };
  timer = setTimeout(expire, Math.min(REQUEST_MS, IDLE_MS));
  request.signal.addEventListener("abort", () => controller.abort(), { once: true });
  const done = () => {
    clearTimeout(timer);
    server.timeout(request, LISTENER_IDLE_S);
  };

  let res: Response;
  try {
    res = await fetch(upstream + url.slice(slash), {
      method: request.method, headers, body: request.body, signal: controller.signal,
      duplex: "half", redirect: "manual", decompress: false, proxy: false, timeout: false,
    } as RequestInit);
  } catch {
    done();
    return badGateway(id);
  }
  last = performance.now();
  const out = res.headers;
  stripHopByHop(out);
  out.set("x-request-id", id);
  const init = { status: res.status, statusText: res.statusText, headers: out };
  const length = Number(out.get("content-length") ?? Number.NaN);
  if (res.body === null) {
    done();
    return new Response(null, init);
  }
  if (length <= SMALL) {
    try {
      const bytes = await res.arrayBuffer();
      done();
      return new Response(bytes, init);
    } catch {
      done();
      return badGateway(id);
    }
  }
  const reader = res.body.getReader();
  return new Response(new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        const { done: end, value } = await reader.read();
        if (end) {
          c.close();
          done();
          return;
        }
        last = performance.now();
        c.enqueue(value);
      } catch (e) {
        done();
        c.error(e);
      }
    },
    cancel(reason) {
      done();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 }), init);
}

const server = Bun.serve({ hostname: "127.0.0.1", port, development: false, idleTimeout: LISTENER_IDLE_S, fetch: handle });
console.log(`listening ${server.port}`);
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    void server.stop(true);
    process.exit(0);
  });
}
