/**
 * The HTTP upstream of bench/h2.ts: Bun.serve with HTTP/1.1 and h2c on one port (GET /1k) — the
 * "direct" target of the HTTP/2 scenario. Prints {"http": PORT}. (The gRPC upstream runs under
 * Node: bench/grpc-upstream.mjs.)
 */

const ONE_K = new Uint8Array(1024).fill(0x61);
const http = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  http2: true,
  idleTimeout: 0,
  fetch: (req) => (new URL(req.url).pathname === "/1k" ? new Response(ONE_K) : new Response("not found", { status: 404 })),
});
console.log(JSON.stringify({ http: http.port }));
