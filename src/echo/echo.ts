/**
 * The built-in echo upstream: answers every request with a JSON description of what it received
 * (method, path, query, headers, body), and echoes WebSocket messages. It makes the default
 * config useful at once (`curl localhost:8080/echo`) and serves the benchmarks.
 */
import type { Server } from "bun";

/** Bodies larger than this are counted, not quoted back. */
const QUOTE_LIMIT = 64 * 1024;

export async function echoResponse(request: Request, server: Server<unknown>): Promise<Response> {
  const url = new URL(request.url);
  let bodyBytes = 0;
  const quoted: Uint8Array[] = [];
  let quotedBytes = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      bodyBytes += chunk.byteLength;
      if (quotedBytes < QUOTE_LIMIT) {
        const part = chunk.subarray(0, QUOTE_LIMIT - quotedBytes);
        quoted.push(part);
        quotedBytes += part.byteLength;
      }
    }
  }
  const body = new TextDecoder().decode(Buffer.concat(quoted));
  return Response.json({
    method: request.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: Object.fromEntries(request.headers),
    body,
    body_bytes: bodyBytes,
    remote: server.requestIP(request)?.address ?? null,
  });
}

export function startEcho(hostname: string, port: number): Server<undefined> {
  return Bun.serve<undefined>({
    hostname,
    port,
    idleTimeout: 30,
    fetch(request, server) {
      if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
        const offered = request.headers.get("sec-websocket-protocol");
        const protocol = offered?.split(",")[0]?.trim();
        if (server.upgrade(request, { data: undefined, headers: protocol ? { "sec-websocket-protocol": protocol } : {} })) return undefined;
        return new Response("upgrade failed", { status: 400 });
      }
      return echoResponse(request, server);
    },
    websocket: {
      message(ws, message) {
        ws.send(message);
      },
    },
  });
}
