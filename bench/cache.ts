/**
 * Cache-hit bench (issue 4): req/s of cached 1 KiB and 64 KiB responses through Switchyard's cache,
 * against the same through Switchyard uncached (pass-through) and nginx proxy_cache when nginx is
 * installed. One tool (wrk), targets alternating over rounds, medians of per-round ratios.
 *
 *   bun bench/cache.ts [--duration 5] [--rounds 3]
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, killAll, spawnLogged } from "./lib/procs.ts";
import { type LoadResult, type Scenario, wrkTool } from "./lib/tools.ts";
import { median } from "./lib/stats.ts";

const arg = (name: string, fallback: number) => Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) || fallback;
const duration = arg("duration", 5);
const rounds = arg("rounds", 3);
const REPO = join(import.meta.dir, "..");
const dir = mkdtempSync(join(tmpdir(), "switchyard-cache-bench-"));

const upstream = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    const size = new URL(req.url).pathname === "/64k" ? 64 * 1024 : 1024;
    return new Response("c".repeat(size), { headers: { "cache-control": "public, max-age=3600", "content-type": "text/plain" } });
  },
});

async function waitReady(origin: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    try {
      await (await fetch(`${origin}/1k`, { signal: AbortSignal.timeout(500) })).arrayBuffer();
      return;
    } catch {
      await Bun.sleep(100);
    }
  }
  throw new Error(`${origin} did not start`);
}

/** `log`: the access log on (to a file, as in production); `workers`: processes sharing the port. */
async function startSwitchyard(name: string, cached: boolean, opts: { log?: boolean; workers?: number } = {}): Promise<string> {
  const port = freePort();
  const file = join(dir, `${name}.json`);
  const route: Record<string, unknown> = { match: { path: { prefix: "/" } }, to: "u" };
  if (cached) route.cache = { name: "c" };
  await Bun.write(file, JSON.stringify({
    listeners: [{ address: "127.0.0.1", port }],
    caches: { c: { path: join(dir, `${name}.db`) } },
    routes: [route],
    clusters: { u: { endpoints: [`http://127.0.0.1:${upstream.port}`] } },
    access_log: opts.log ? { path: join(dir, `${name}-access.log`) } : { enabled: false },
    ...(opts.workers ? { workers: opts.workers } : {}),
  }));
  spawnLogged(name, [process.execPath, join(REPO, "src/cli.ts"), "start", file], { cwd: REPO, env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, logPath: join(dir, `${name}.log`) });
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(origin);
  return origin;
}

async function startNginx(): Promise<string | undefined> {
  if (Bun.which("nginx") === null) return undefined;
  const prefix = join(dir, "nginx");
  for (const d of ["tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "cache"]) mkdirSync(join(prefix, d), { recursive: true });
  const port = freePort();
  const conf = (await Bun.file(join(import.meta.dir, "nginx-cache.conf")).text())
    .replaceAll("__PREFIX__", prefix).replaceAll("__UPSTREAM_PORT__", String(upstream.port)).replaceAll("__LISTEN_PORT__", String(port))
    .replaceAll("__USER__", process.getuid?.() === 0 ? "user root;" : "");
  await Bun.write(join(prefix, "nginx.conf"), conf);
  spawnLogged("nginx", ["nginx", "-p", prefix, "-c", join(prefix, "nginx.conf"), "-e", join(prefix, "error.log"), "-g", "daemon off;"], { logPath: join(dir, "nginx.log") });
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(origin);
  return origin;
}

const tool = await wrkTool(1);
const results = new Map<string, LoadResult[]>();
try {
  const targets: [string, string][] = [
    ["switchyard-cache", await startSwitchyard("sy-cache", true)],
    ["switchyard-cache-log", await startSwitchyard("sy-cache-log", true, { log: true })],
    ["switchyard-cache-2w", await startSwitchyard("sy-cache-2w", true, { workers: 2 })],
    ["switchyard-uncached", await startSwitchyard("sy-pass", false)],
  ];
  const nginx = await startNginx();
  if (nginx) targets.push(["nginx-proxy_cache", nginx]);
  for (const path of ["/1k", "/64k"]) {
    const scenario: Scenario = { name: `cache${path.slice(1)}`, description: "", kind: "http", method: "GET", path, bodyBytes: 0, duration, connections: 50 };
    await tool.prepare(scenario, dir);
    // Warm every cache first, so the measured requests are hits.
    for (const [, origin] of targets) for (let i = 0; i < 3; i++) await (await fetch(origin + path)).arrayBuffer();
    await Bun.sleep(200);
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? targets : [...targets].reverse();
      for (const [name, origin] of order) {
        const res = await tool.run(scenario, origin + path, duration, dir);
        const key = `${path} ${name}`;
        results.set(key, [...(results.get(key) ?? []), res]);
      }
    }
  }
} finally {
  upstream.stop(true);
  await killAll();
}

console.log(`\nCache hits: wrk ${tool.version}, 50 connections, ${rounds} round(s) × ${duration} s, medians\n`);
console.log("path   target                 req/s  p50 ms  p99 ms  non2xx");
for (const [key, rs] of results) {
  const [path, name] = key.split(" ");
  const rps = median(rs.map((r) => r.requestsPerSec));
  console.log(`${path!.padEnd(5)}  ${name!.padEnd(20)}  ${Math.round(rps).toLocaleString("en").padStart(7)}  ${(median(rs.map((r) => r.p50)) * 1000).toFixed(2).padStart(6)}  ${(median(rs.map((r) => r.p99)) * 1000).toFixed(2).padStart(6)}  ${rs.reduce((s, r) => s + r.non2xx, 0)}`);
}
for (const path of ["/1k", "/64k"]) {
  const rps = (name: string) => median((results.get(`${path} ${name}`) ?? []).map((r) => r.requestsPerSec));
  const cache = rps("switchyard-cache");
  const line = [`cache/uncached ${(cache / rps("switchyard-uncached")).toFixed(2)}`];
  if (results.has(`${path} nginx-proxy_cache`)) {
    const nginx = rps("nginx-proxy_cache");
    line.push(`cache/nginx ${(cache / nginx).toFixed(2)}`, `cache+log/nginx ${(rps("switchyard-cache-log") / nginx).toFixed(2)}`, `2 workers/nginx ${(rps("switchyard-cache-2w") / nginx).toFixed(2)}`);
  }
  console.log(`${path}: ${line.join(" · ")}`);
}
