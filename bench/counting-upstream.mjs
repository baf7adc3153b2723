/**
 * An upstream that counts the TCP connections it accepts: node:http (or node:https), run with
 * `node` when it is on PATH (bench/reuse.ts), else with bun. The 'connection' event fires once per
 * accepted TCP connection, so — unlike counting distinct peer ports, which the kernel reuses after
 * a few thousand connections — the count stays exact however much a proxy churns.
 *
 *   node bench/counting-upstream.mjs PORT [CERT.pem KEY.pem]     (with a cert: HTTPS)
 *
 * Prints `listening <port>` once ready.
 *   GET  /1k       1 KiB body (Content-Length)
 *   GET  /__stats  {"requests","connections","used","handshakes","resumed","open","peakOpen"} since
 *                  the last POST /__reset: requests served, TCP connections accepted, distinct
 *                  connections that carried a request (new or kept from before), TLS handshakes
 *                  completed (and how many resumed a session), connections open now and at most
 *   POST /__reset
 * The /__stats and /__reset requests themselves are not counted.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

const [portText, certPath, keyPath] = process.argv.slice(2);
const ONE_K = Buffer.alloc(1024, 0x61);
let requests = 0, connections = 0, used = 0, handshakes = 0, resumed = 0, open = 0, peakOpen = 0;
/** Bumped by /__reset: a connection counts once in `used` per epoch. */
let epoch = 0;

function handler(req, res) {
  if (req.url === "/__stats") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ requests, connections, used, handshakes, resumed, open, peakOpen }));
    return;
  }
  if (req.url === "/__reset" && req.method === "POST") {
    requests = connections = used = handshakes = resumed = 0;
    peakOpen = open;
    epoch++;
    res.writeHead(204);
    res.end();
    return;
  }
  requests++;
  if (req.socket.benchEpoch !== epoch) {
    req.socket.benchEpoch = epoch;
    used++;
  }
  if (req.url === "/1k") {
    res.writeHead(200, { "content-type": "text/plain", "content-length": "1024" });
    res.end(ONE_K);
  } else {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  }
}

const options = { keepAliveTimeout: 60_000, headersTimeout: 65_000, requestTimeout: 0, maxRequestsPerSocket: 0 };
const server = certPath
  ? https.createServer({ ...options, cert: readFileSync(certPath), key: readFileSync(keyPath) }, handler)
  : http.createServer(options, handler);
server.on("connection", (socket) => {
  connections++;
  open++;
  if (open > peakOpen) peakOpen = open;
  socket.once("close", () => open--);
});
server.on("secureConnection", (tlsSocket) => {
  handshakes++;
  if (tlsSocket.isSessionReused()) resumed++;
});
server.listen(Number(portText ?? 0), "127.0.0.1", () => console.log(`listening ${server.address().port}`));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
