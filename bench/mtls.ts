/**
 * What the mTLS front costs (issue 5): the same Switchyard, one route to bench/upstream.ts, on a
 * listener that is plain HTTP, TLS on Bun.serve, or mTLS (`client_auth`, which puts the node:tls
 * front on the port and relays to Bun.serve on loopback). Targets run alternately, several rounds;
 * the table shows medians and the ratio to TLS. Keep-alive (`GET /1k`, 32 connections) shows the
 * relay; `Connection: close` shows the handshake on every request.
 *
 * wrk cannot present a client certificate, so the mTLS listener runs `mode: request` and wrk
 * connects without one: the relay and the per-request identity lookup are measured, the client
 * certificate's verification (once per connection) is not.
 *
 *   bun bench/mtls.ts [--duration 2] [--rounds 2]     (~20 s with the defaults)
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killAll, runBounded, spawnLogged } from "./lib/procs.ts";
import { type LoadResult, type Scenario, wrkTool } from "./lib/tools.ts";
import { median } from "./lib/stats.ts";

const arg = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || fallback;
const duration = arg("duration", 2);
const rounds = arg("rounds", 2);
const REPO = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "switchyard-mtls-bench-"));

async function openssl(args: string[]): Promise<void> {
  const r = await runBounded(["openssl", ...args], 10_000);
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

// A CA and a server certificate for 127.0.0.1, made for this run.
await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.pem"), "-days", "1", "-subj", "/CN=bench CA"]);
await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "server.key"), "-out", join(dir, "server.csr"), "-subj", "/CN=127.0.0.1"]);
await Bun.write(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\n");
await openssl(["x509", "-req", "-in", join(dir, "server.csr"), "-CA", join(dir, "ca.pem"), "-CAkey", join(dir, "ca.key"), "-CAcreateserial", "-out", join(dir, "server.pem"), "-days", "1", "-extfile", join(dir, "server.ext")]);

type Target = "http" | "tls" | "mtls";
const certificates = [{ cert: join(dir, "server.pem"), key: join(dir, "server.key") }];
const listenerTls: Record<Target, unknown> = {
  http: undefined,
  tls: { certificates },
  mtls: { certificates, client_auth: { mode: "request", ca: join(dir, "ca.pem"), forward_client_cert: "set" } },
};

async function waitReady(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await fetch(url, { tls: { rejectUnauthorized: false }, signal: AbortSignal.timeout(500) } as RequestInit).catch(() => undefined);
    if (r?.ok) return;
    await Bun.sleep(100);
  }
  throw new Error(`${url} did not start`);
}

const upstreamPort = freePort();
spawnLogged("upstream", [process.execPath, join(import.meta.dir, "upstream.ts"), String(upstreamPort)], { logPath: join(dir, "upstream.log") });
await waitReady(`http://127.0.0.1:${upstreamPort}/1k`);

const targets = new Map<Target, string>();
for (const target of ["http", "tls", "mtls"] as const) {
  const port = freePort();
  const file = join(dir, `${target}.json`);
  await Bun.write(file, JSON.stringify({
    listeners: [{ address: "127.0.0.1", port, ...(listenerTls[target] ? { tls: listenerTls[target] } : {}) }],
    routes: [{ to: "up" }], clusters: { up: { endpoints: [`http://127.0.0.1:${upstreamPort}`] } }, access_log: { enabled: false },
  }));
  spawnLogged(`switchyard-${target}`, [process.execPath, join(REPO, "src/cli.ts"), "start", file], {
    cwd: REPO, env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, logPath: join(dir, `${target}.log`),
  });
  const url = `${target === "http" ? "http" : "https"}://127.0.0.1:${port}/1k`;
  await waitReady(url);
  targets.set(target, url);
}

const tool = await wrkTool(1);
const keepAlive: Scenario = { name: "keep-alive", description: "GET /1k", kind: "http", method: "GET", path: "/1k", bodyBytes: 0, duration, connections: 32 };
const handshakes: Scenario = { ...keepAlive, name: "handshakes", connections: 8 };
await tool.prepare(keepAlive, dir);
// wrk's Lua: a Connection: close header makes every request a new connection (and handshake).
await Bun.write(join(dir, "handshakes.lua"), `wrk.headers["Connection"] = "close"\n${await Bun.file(join(dir, "keep-alive.lua")).text()}`);

const results = new Map<string, LoadResult[]>();
try {
  for (let round = 0; round < rounds; round++) {
    for (const [target, url] of targets) {
      (results.get(`keep-alive ${target}`) ?? results.set(`keep-alive ${target}`, []).get(`keep-alive ${target}`)!).push(await tool.run(keepAlive, url, duration, dir));
    }
  }
  for (const target of ["tls", "mtls"] as const) {
    results.set(`handshakes ${target}`, [await tool.run(handshakes, targets.get(target)!, duration, dir)]);
  }
} finally {
  await killAll();
}

console.log(`\nmTLS front cost: wrk ${tool.version}, GET /1k; keep-alive 32 connections × ${rounds} rounds, Connection: close 8 connections × 1; ${duration} s each\n`);
// wrk counts every server close of a TLS connection as a read error (also against a bare Bun.serve
// with TLS), so with Connection: close only non-2xx answers are failures.
console.log("scenario    listener    req/s (median)  p99 ms   vs tls  non-2xx");
for (const [key, rs] of results) {
  const [scenario, target] = key.split(" ") as [string, Target];
  const rps = median(rs.map((r) => r.requestsPerSec));
  const tlsRps = median(results.get(`${scenario} tls`)!.map((r) => r.requestsPerSec));
  const errors = rs.reduce((n, r) => n + r.non2xx + (scenario === "keep-alive" ? r.socketErrors : 0), 0);
  console.log(`${scenario.padEnd(10)}  ${target.padEnd(10)}  ${Math.round(rps).toLocaleString("en").padStart(14)}  ${(median(rs.map((r) => r.p99)) * 1000).toFixed(2).padStart(6)}  ${(rps / tlsRps).toFixed(2).padStart(7)}  ${String(errors).padStart(7)}`);
}
