/**
 * Resilience bench (issue 3): three upstreams, one of them failing, loaded through Switchyard
 * with the bare pipeline (round robin, no retries) and with the resilience policies (retries on
 * another endpoint, outlier ejection, active health checks). Prints success rate, req/s and
 * p50/p99 for each, per failure mode (the failing upstream answers 503, or resets connections).
 *
 *   bun bench/resilience.ts [--duration 5]
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killAll, spawnLogged } from "./lib/procs.ts";
import { type LoadResult, type Scenario, wrkTool } from "./lib/tools.ts";

const duration = Number(process.argv[process.argv.indexOf("--duration") + 1]) || 5;
const REPO = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "switchyard-resilience-"));

function healthyUpstream() {
  return Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("x".repeat(1024)) });
}

function failingUpstream(mode: "503" | "reset"): { port: number; stop(): void } {
  if (mode === "503") {
    const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("unavailable", { status: 503 }) });
    return { port: s.port!, stop: () => s.stop(true) };
  }
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (socket) => socket.terminate() } });
  return { port: l.port, stop: () => l.stop(true) };
}

function config(port: number, endpoints: string[], resilient: boolean): string {
  const cluster: Record<string, unknown> = { endpoints };
  const route: Record<string, unknown> = { match: { path: { prefix: "/" } }, to: "pool" };
  if (resilient) {
    route.retry = { attempts: 3, retry_on: ["connect-failure", "reset", "gateway-error"], backoff: { base: "1ms", max: "10ms" } };
    cluster.outlier = { consecutive_gateway_failure: 3, base_ejection_time: "30s", max_ejection_percent: 50 };
    cluster.health_check = { path: "/", interval: "1s", jitter: "100ms", unhealthy_threshold: 2 };
    cluster.retry_budget = { percent: 50, min_concurrency: 10 };
  }
  return JSON.stringify({ listeners: [{ address: "127.0.0.1", port }], routes: [route], clusters: { pool: cluster }, access_log: { enabled: false } });
}

async function waitReady(origin: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(origin, { signal: AbortSignal.timeout(500) });
      return;
    } catch {
      await Bun.sleep(100);
    }
  }
  throw new Error(`${origin} did not start`);
}

const scenario: Scenario = { name: "resilience", description: "GET through a pool with one failing upstream", kind: "http", method: "GET", path: "/", bodyBytes: 0, duration, connections: 32 };
const tool = await wrkTool(1);
await tool.prepare(scenario, dir);
const rows: { mode: string; policies: string; r: LoadResult }[] = [];
const good = [healthyUpstream(), healthyUpstream()];
try {
  for (const mode of ["503", "reset"] as const) {
    const bad = failingUpstream(mode);
    const endpoints = [...good.map((s) => `http://127.0.0.1:${s.port}`), `http://127.0.0.1:${bad.port}`];
    for (const resilient of [false, true]) {
      const port = freePort();
      const file = join(dir, `sy-${mode}-${resilient}.json`);
      await Bun.write(file, config(port, endpoints, resilient));
      const p = spawnLogged(`switchyard-${mode}-${resilient}`, [process.execPath, join(REPO, "src/cli.ts"), "start", file], {
        cwd: REPO, env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, logPath: join(dir, `sy-${mode}-${resilient}.log`),
      });
      await waitReady(`http://127.0.0.1:${port}/`);
      const r = await tool.run(scenario, `http://127.0.0.1:${port}/`, duration, dir);
      rows.push({ mode, policies: resilient ? "retries + outlier + health" : "none (round robin)", r });
      p.proc.kill("SIGTERM");
      await p.proc.exited;
    }
    bad.stop();
  }
} finally {
  for (const s of good) s.stop(true);
  await killAll();
}

const pct = (r: LoadResult) => (((r.requests - r.non2xx - r.socketErrors) / Math.max(1, r.requests)) * 100).toFixed(2);
console.log(`\nResilience: 3 upstreams, 1 failing; wrk ${tool.version}, 32 connections, ${duration} s each\n`);
console.log("failing mode  policies                     success %    req/s  p50 ms  p99 ms  errors");
for (const { mode, policies, r } of rows) {
  console.log(
    `${mode.padEnd(12)}  ${policies.padEnd(27)}  ${pct(r).padStart(9)}  ${Math.round(r.requestsPerSec).toLocaleString("en").padStart(7)}  ${(r.p50 * 1000).toFixed(2).padStart(6)}  ${(r.p99 * 1000).toFixed(2).padStart(6)}  ${r.non2xx + r.socketErrors}`,
  );
}
