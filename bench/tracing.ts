/**
 * Tracing's cost under load: the same Switchyard config with tracing off and with tracing on at
 * ratio 1 (every request: a server and a client span, exported to a local collector that decodes
 * nothing), measured alternately with wrk (`bun bench/tracing.ts [--rounds 3] [--seconds 2]`).
 * Prints req/s and p99 per round and the median of the per-round ratios (shared/bun-notes.md:
 * this machine is noisy, single figures mislead).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "./lib/stats.ts";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "2" }, connections: { type: "string", default: "32" } } });
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const REPO = join(import.meta.dir, "..");
const tmp = mkdtempSync(join(tmpdir(), "switchyard-bench-tracing-"));
const procs: ReturnType<typeof Bun.spawn>[] = [];

const collector = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => (await req.arrayBuffer(), new Response(null)) });

function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

async function waitUp(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await Bun.sleep(50);
  }
  throw new Error(`${url} did not come up`);
}

async function startUpstream(): Promise<string> {
  const port = freePort();
  procs.push(Bun.spawn([process.execPath, join(import.meta.dir, "upstream.ts"), String(port)], { stdout: "ignore", stderr: "inherit" }));
  await waitUp(`http://127.0.0.1:${port}/1k`);
  return `http://127.0.0.1:${port}`;
}

async function startSwitchyard(name: string, upstream: string, tracing: boolean): Promise<string> {
  const port = freePort();
  const config = {
    listeners: [{ address: "127.0.0.1", port }],
    access_log: { enabled: false },
    shutdown: { drain_timeout: "1s" },
    routes: [{ name: "bench", to: "up" }],
    clusters: { up: { endpoints: [upstream] } },
    ...(tracing ? { telemetry: { tracing: { endpoint: `http://127.0.0.1:${collector.port}/v1/traces`, ratio: 1, flush_interval: "1s" } } } : {}),
  };
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  procs.push(Bun.spawn([process.execPath, join(REPO, "src", "cli.ts"), "start", file], { cwd: REPO, stdout: "ignore", stderr: "ignore" }));
  await waitUp(`http://127.0.0.1:${port}/1k`);
  return `http://127.0.0.1:${port}`;
}

function wrk(url: string, duration = seconds): { rps: number; p99: number } {
  const run = Bun.spawnSync(["wrk", "-t1", `-c${values.connections}`, `-d${duration}s`, "--latency", url], { stdout: "pipe", stderr: "pipe" });
  const out = run.stdout.toString();
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p99m = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99 = p99m ? Number(p99m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[p99m[2]!]! : Number.NaN;
  if (!Number.isFinite(rps)) throw new Error(`wrk failed: ${out}${run.stderr.toString()}`);
  return { rps, p99 };
}


try {
  const upstream = await startUpstream();
  const off = await startSwitchyard("off", upstream, false);
  const on = await startSwitchyard("on", upstream, true);
  wrk(`${off}/1k`, 1);
  wrk(`${on}/1k`, 1); // warm-up
  const ratios: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const a = wrk(`${off}/1k`);
    const b = wrk(`${on}/1k`);
    ratios.push(b.rps / a.rps);
    console.log(`round ${r}: off ${Math.round(a.rps)} req/s p99 ${a.p99.toFixed(2)} ms | on ${Math.round(b.rps)} req/s p99 ${b.p99.toFixed(2)} ms | on/off ${(b.rps / a.rps).toFixed(3)}`);
  }
  console.log(`median on/off throughput ratio: ${median(ratios).toFixed(3)} (${rounds} rounds of ${seconds}s, ${values.connections} connections)`);
} finally {
  for (const p of procs) p.kill();
  collector.stop(true);
  rmSync(tmp, { recursive: true, force: true });
  await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(3000)]);
}
