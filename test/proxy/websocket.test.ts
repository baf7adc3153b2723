/** WebSocket proxying over real sockets: frames, control frames, close codes, refusals, abrupt peers and backpressure. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ServerWebSocket } from "bun";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { rawRequest } from "../helpers/raw.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";
import { rawWsClient, wsClient } from "../helpers/ws.ts";

interface PeerData {
  path: string;
  query: string;
  headers: Record<string, string>;
}

const MiB = 1024 * 1024;
let upstream: Upstream;
let proxy: TestProxy;
const peers: ServerWebSocket<PeerData>[] = [];
const serverEvents: { type: string; data?: string; code?: number; reason?: string }[] = [];
let flood: { sent: number; total: number } = { sent: 0, total: 0 };

function floodClient(ws: ServerWebSocket<PeerData>): void {
  const chunk = new Uint8Array(64 * 1024).fill(7);
  const pump = () => {
    while (flood.sent < flood.total) {
      const r = ws.send(chunk);
      if (r === 0) return; // closed
      flood.sent += chunk.byteLength;
      if (r === -1) return; // backpressure: wait for drain
    }
  };
  (ws as ServerWebSocket<PeerData> & { pump?: () => void }).pump = pump;
  pump();
}

beforeAll(async () => {
  upstream = startUpstream(
    (req, server) => {
      const url = new URL(req.url);
      if (url.pathname === "/refuse") return new Response("go away", { status: 403 });
      if (url.pathname === "/missing") return new Response("nope", { status: 404 });
      const protocol = req.headers.get("sec-websocket-protocol")?.split(",").map((p) => p.trim()).find((p) => p === "chat.v2");
      const ok = server.upgrade(req, {
        data: { path: url.pathname, query: url.search, headers: Object.fromEntries(req.headers) } satisfies PeerData,
        headers: protocol ? { "sec-websocket-protocol": protocol } : {},
      });
      return ok ? undefined : new Response("upgrade failed", { status: 400 });
    },
    {
      open(ws: ServerWebSocket<PeerData>) {
        peers.push(ws);
        if (ws.data.path === "/flood") floodClient(ws);
        if (ws.data.path === "/slow-reader") ws.pause?.();
      },
      message(ws: ServerWebSocket<PeerData>, message: string | Buffer) {
        if (ws.data.path === "/slow-reader") return;
        serverEvents.push({ type: "message", data: typeof message === "string" ? `text:${message}` : `binary:${message.toString("hex")}` });
        if (message === "die") return ws.terminate();
        if (message === "close-4002") return ws.close(4002, "done here");
        if (message === "ping-me") return void ws.ping("up-ping");
        ws.send(message); // echo, same frame type
      },
      ping(_ws: ServerWebSocket<PeerData>, data: Buffer) {
        serverEvents.push({ type: "ping", data: data.toString() });
      },
      pong(_ws: ServerWebSocket<PeerData>, data: Buffer) {
        serverEvents.push({ type: "pong", data: data.toString() });
      },
      close(ws: ServerWebSocket<PeerData>, code: number, reason: string) {
        serverEvents.push({ type: "close", code, reason, data: ws.data.path });
      },
      drain(ws: ServerWebSocket<PeerData>) {
        (ws as ServerWebSocket<PeerData> & { pump?: () => void }).pump?.();
      },
    } as never,
  );
  proxy = await startProxy({
    routes: [
      { name: "ws", match: { path: { prefix: "/ws/" } }, rewrite: { path_prefix: "/" }, to: "up", websocket: true, websocket_headers: ["authorization", "cookie", "x-tenant"] },
      { name: "plain", match: { path: { prefix: "/plain/" } }, to: "up" },
    ],
    clusters: { up: { endpoints: [upstream.origin] } },
  });
});

afterAll(async () => {
  await proxy.stop();
  upstream.stop(true);
});

const wsUrl = (path: string) => `ws://127.0.0.1:${proxy.port}${path}`;
const lastPeer = () => peers[peers.length - 1]!;

describe("WebSocket proxying", () => {
  test("path, query, subprotocol and chosen headers reach the upstream; text and binary pass both ways", async () => {
    const c = wsClient(wsUrl("/ws/room/1?token=abc"), {
      protocols: ["chat.v1", "chat.v2"],
      headers: { authorization: "Bearer t", "x-tenant": "acme", "x-not-forwarded": "1" },
    });
    await c.opened;
    expect(c.ws.protocol).toBe("chat.v2");
    const peer = lastPeer();
    expect(peer.data.path).toBe("/room/1");
    expect(peer.data.query).toBe("?token=abc");
    expect(peer.data.headers.authorization).toBe("Bearer t");
    expect(peer.data.headers["x-tenant"]).toBe("acme");
    expect(peer.data.headers["x-not-forwarded"]).toBeUndefined();
    expect(peer.data.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(peer.data.headers["x-request-id"]).toBeString();

    c.ws.send("hello");
    expect((await c.next("message")).data).toBe("hello");
    c.ws.send(new Uint8Array([0, 1, 2, 255]));
    const bin = (await c.next("message")).data;
    expect(Buffer.isBuffer(bin)).toBe(true);
    expect((bin as Buffer).toString("hex")).toBe("000102ff");
    expect(serverEvents).toContainEqual({ type: "message", data: "text:hello" });
    expect(serverEvents).toContainEqual({ type: "message", data: "binary:000102ff" });
    c.ws.close(1000);
    await c.next("close");
  });

  test("pings and pongs pass both ways", async () => {
    const c = wsClient(wsUrl("/ws/pingpong"));
    await c.opened;
    c.ws.ping("client-ping");
    await waitFor("upstream saw the ping", () => serverEvents.find((e) => e.type === "ping" && e.data === "client-ping"));
    expect((await c.next("pong")).data?.toString()).toBe("client-ping"); // the upstream's answer came back
    c.ws.send("ping-me");
    const ping = await c.next("ping");
    expect(ping.data?.toString()).toBe("up-ping");
    c.ws.close();
  });

  test("close codes and reasons pass both ways", async () => {
    const a = wsClient(wsUrl("/ws/close-from-client"));
    await a.opened;
    a.ws.close(4001, "bye now");
    await waitFor("upstream close", () => serverEvents.find((e) => e.type === "close" && e.data === "/close-from-client"));
    expect(serverEvents.find((e) => e.type === "close" && e.data === "/close-from-client")).toMatchObject({ code: 4001, reason: "bye now" });

    const b = wsClient(wsUrl("/ws/close-from-upstream"));
    await b.opened;
    b.ws.send("close-4002");
    expect(await b.next("close")).toMatchObject({ code: 4002, reason: "done here" });
  });

  test("an upstream that dies abruptly closes the client with 1014 (bad gateway), not a hang", async () => {
    const c = wsClient(wsUrl("/ws/dies"));
    await c.opened;
    c.ws.send("die");
    const close = await c.next("close");
    expect([1014, 1011, 1001]).toContain(close.code!);
  });

  test("a client that vanishes (TCP dropped) closes the upstream side", async () => {
    const { socket } = await rawWsClient(proxy.port, "/ws/vanishing");
    await waitFor("upstream peer", () => peers.find((p) => p.data.path === "/vanishing"));
    socket.destroy();
    const close = await waitFor("upstream close", () => serverEvents.find((e) => e.type === "close" && e.data === "/vanishing"));
    expect([1001, 1006, 1005]).toContain(close.code!);
  });

  test("an upstream that refuses the upgrade gives the client its status", async () => {
    const res = await rawRequest(
      proxy.port,
      "GET /ws/refuse HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ error: "upstream_refused_upgrade" });
    const missing = await rawRequest(
      proxy.port,
      "GET /ws/missing HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    expect(missing.status).toBe(404);
  });

  test("an upgrade on a route without websocket: true is forwarded as plain HTTP, without Upgrade", async () => {
    const res = await rawRequest(
      proxy.port,
      "GET /plain/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    expect(res.status).toBe(400); // the upstream saw no upgrade request
  });

  test("backpressure: a client that stops reading stops the proxy reading the upstream", async () => {
    flood = { sent: 0, total: 256 * MiB };
    const client = await rawWsClient(proxy.port, "/ws/flood");
    client.socket.pause();
    // Let the upstream push as hard as it can for a while: a negative check (the flood must not get
    // far while the client does not read), so it takes a stretch of time, not an event.
    await Bun.sleep(1500);
    const sentWhilePaused = flood.sent;
    expect(sentWhilePaused).toBeLessThan(64 * MiB);
    // Reading again lets it all flow.
    const before = client.received();
    client.socket.resume();
    await waitFor("more bytes after resume", () => client.received() > before + 8 * MiB, 10_000);
    expect(flood.sent).toBeGreaterThan(sentWhilePaused);
    flood.total = 0; // stop the flood
    client.socket.destroy();
  }, 20_000);

  test("backpressure: an upstream that stops reading makes the proxy stop reading the client", async () => {
    const c = wsClient(wsUrl("/ws/slow-reader"));
    await c.opened;
    const chunk = new Uint8Array(64 * 1024);
    let offered = 0;
    const deadline = performance.now() + 1500;
    // Offer data as fast as the client socket takes it; its own buffer grows once the proxy stops reading.
    while (performance.now() < deadline && offered < 256 * MiB) {
      if (c.ws.bufferedAmount < 4 * MiB) {
        c.ws.send(chunk);
        offered += chunk.byteLength;
      } else await Bun.sleep(5); // paces the sender while its buffer is full: the 1.5 s window is the scenario
    }
    expect(offered).toBeLessThan(64 * MiB);
    c.ws.close();
  }, 20_000);

  test("every WebSocket session gets one access log line when it ends", async () => {
    const c = wsClient(wsUrl("/ws/logged"), { headers: { "x-request-id": "ws-log-1" } });
    await c.opened;
    c.ws.send("x");
    await c.next("message");
    c.ws.close(1000);
    const line = await proxy.logOf("ws-log-1");
    expect(line.status).toBe(101);
    expect(line.route).toBe("ws");
    expect(line.bytes_in).toBe(1);
    expect(line.bytes_out).toBe(1);
  });
});
