/**
 * Micro-bench of the request guard on a clean request (`bun bench/guard.ts`, ~3 s): what the
 * pre-routing checks cost per request. It runs inside a Bun.serve handler, on the live request,
 * because Bun's request Headers cost more to read than a JS-made Headers object.
 */
import { compileGuard } from "../src/security/guard.ts";
import { GuardShape } from "../src/security/schema.ts";
import { z } from "zod";
import { splitTarget } from "../routes/proxy.ts";

const Guard = z.strictObject(GuardShape);
const N = 200_000;

function measure(name: string, fn: () => unknown): string {
  for (let i = 0; i < 20_000; i++) fn();
  const started = performance.now();
  for (let i = 0; i < N; i++) fn();
  return `${name.padEnd(58)} ${(((performance.now() - started) * 1e6) / N).toFixed(0).padStart(5)} ns`;
}

const results: string[] = [];
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(request, srv) {
    const address = srv.requestIP(request)!.address;
    const target = splitTarget(request.url);
    const defaults = compileGuard(Guard.parse({}));
    const noScan = compileGuard(Guard.parse({ headers_with_underscores: "allow" }));
    const trusted = compileGuard(Guard.parse({ trusted_proxies: ["127.0.0.1", "10.0.0.0/8"] }));
    if (defaults.inspect(request, target) !== "/api/v1/items/12345") throw new Error("the clean request was not passed");
    results.push(
      measure("inspect, defaults (header-name scan for underscores)", () => defaults.inspect(request, target)),
      measure("inspect, headers_with_underscores: allow (no scan)", () => noScan.inspect(request, target)),
      measure("peer, no trusted_proxies", () => defaults.peer(address, request.headers)),
      measure("peer, trusted peer, 2-hop X-Forwarded-For", () => trusted.peer(address, request.headers)),
      measure("splitTarget (existing, for scale)", () => splitTarget(request.url)),
      measure("crypto.randomUUID (request id, for scale)", () => crypto.randomUUID()),
    );
    return new Response("done");
  },
});

await (await fetch(`http://127.0.0.1:${server.port}/api/v1/items/12345?page=2&sort=asc`, {
  headers: {
    "user-agent": "curl/8.5.0", accept: "application/json", authorization: "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
    cookie: "sid=abc; theme=dark", "accept-language": "en", "x-forwarded-for": "198.51.100.7, 10.0.0.5",
  },
})).text();
server.stop(true);
console.log(`request guard, clean GET with 10 header fields, ${N} iterations each (Bun ${Bun.version})`);
for (const line of results) console.log(line);
