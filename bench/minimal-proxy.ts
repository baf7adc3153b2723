/**
 * The floor: the smallest correct fetch-only Bun reverse proxy. Switchyard's overhead is measured
 * against this. Start it like Switchyard starts itself, with BUN_CONFIG_MAX_HTTP_REQUESTS=65535.
 *
 *   BUN_CONFIG_MAX_HTTP_REQUESTS=65535 bun bench/minimal-proxy.ts PORT UPSTREAM_ORIGIN
 *   (or MINIMAL_PORT / UPSTREAM_ORIGIN env; PORT 0 = any free port; an https origin is trusted
 *   through UPSTREAM_CA=FILE)
 *
 * Prints `listening <port>` once ready. HTTP: the request goes to the upstream with the same
 * method, path, headers and (streamed) body; the upstream's response is returned untouched.
 * WebSocket (any path with `Upgrade: websocket`): the upstream socket is opened first, then the
 * client is upgraded, then messages are forwarded both ways as they come (no backpressure
 * handling: it is a floor, not a product).
 */
import type { ServerWebSocket } from "bun";

const port = Number(process.argv[2] ?? process.env.MINIMAL_PORT ?? 0);
const upstream = (process.argv[3] ?? process.env.UPSTREAM_ORIGIN ?? "").replace(/\/$/, "");
if (!/^https?:\/\/[^/]+$/.test(upstream)) {
  console.error("usage: bun bench/minimal-proxy.ts PORT http(s)://HOST:PORT   (https: UPSTREAM_CA=FILE to trust)");
  process.exit(2);
}
/** An https upstream (bench/reuse.ts): its certificate is trusted through UPSTREAM_CA (a PEM file). */
const upstreamTls = upstream.startsWith("https:") && process.env.UPSTREAM_CA ? { tls: { ca: await Bun.file(process.env.UPSTREAM_CA).text() } } : {};
const wsUpstream = upstream.replace(/^http/, "ws");

interface Session {
  upstream: WebSocket;
}

function pathOf(url: string): string {
  return url.slice(url.indexOf("/", url.indexOf("://") + 3));
}

function openUpstream(path: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUpstream + path);
    ws.binaryType = "nodebuffer";
    ws.addEventListener("open", () => resolve(ws), { once: true });
    ws.addEventListener("error", () => reject(new Error("upstream WebSocket failed")), { once: true });
  });
}

const server = Bun.serve<Session>({
  hostname: "127.0.0.1",
  port,
  development: false,
  async fetch(req, srv) {
    const path = pathOf(req.url);
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      let ws: WebSocket;
      try {
        ws = await openUpstream(path);
      } catch {
        return new Response("bad gateway\n", { status: 502 });
      }
      if (srv.upgrade(req, { data: { upstream: ws } })) return undefined;
      ws.close();
      return new Response("bad upgrade\n", { status: 400 });
    }
    try {
      return await fetch(upstream + path, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        decompress: false,
        redirect: "manual",
        proxy: false,
        ...upstreamTls,
      });
    } catch {
      return new Response("bad gateway\n", { status: 502 });
    }
  },
  websocket: {
    open(ws: ServerWebSocket<Session>) {
      const up = ws.data.upstream;
      up.onmessage = (e: MessageEvent<string | Buffer>) => {
        ws.send(e.data);
      };
      up.onclose = () => ws.close();
    },
    message(ws: ServerWebSocket<Session>, message: string | Buffer) {
      ws.data.upstream.send(message);
    },
    close(ws: ServerWebSocket<Session>) {
      ws.data.upstream.close();
    },
  },
});

console.log(`listening ${server.port}`);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    void server.stop(true);
    process.exit(0);
  });
}
