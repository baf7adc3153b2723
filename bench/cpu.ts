/**
 * Proxy CPU time per request: a steadier figure than req/s on a small, shared machine (the load
 * tool, the upstream and the proxy compete for the same cores, so req/s moves with everything
 * else; the proxy's own CPU seconds per request do not). Runs wrk against the minimal proxy and
 * Switchyard alternately (and the floor proxy: bench/floor-proxy.ts) and reads each serving
 * process's utime+stime from /proc.
 *
 *   bun bench/cpu.ts [--scenario get-1k,sse] [--rounds 5] [--duration 3] [--connections 50]
 *
 * Prints, per scenario and target, the median µs of proxy CPU per request and req/s, and the
 * ratios to the minimal proxy (1.0 = as cheap as it).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuSeconds, killAll } from "./lib/procs.ts";
import { median } from "./lib/stats.ts";
import { startFloor, startMinimal, startSwitchyard, startUpstream, type Target } from "./lib/targets.ts";
import { type Scenario, wrkTool } from "./lib/tools.ts";

const { values: flags } = parseArgs({
  options: {
    scenario: { type: "string", default: "get-1k,get-64k,sse" },
    rounds: { type: "string", default: "5" },
    duration: { type: "string", default: "3" },
    connections: { type: "string" },
  },
});
const rounds = Number(flags.rounds);
const duration = Number(flags.duration);
if (!(rounds > 0 && duration > 0)) throw new Error("--rounds and --duration must be positive numbers");



const tmp = mkdtempSync(join(tmpdir(), "switchyard-cpu-"));
const stop = async () => {
  await killAll();
  rmSync(tmp, { recursive: true, force: true });
};
process.on("SIGINT", () => void stop().then(() => process.exit(130)));

try {
  const scenarios: Scenario[] = [];
  for (const name of flags.scenario!.split(",")) {
    const s = (await Bun.file(join(import.meta.dir, "scenarios", `${name.trim()}.json`)).json()) as Scenario;
    if (s.kind !== "http") throw new Error(`${name}: only HTTP scenarios are measured here`);
    if (flags.connections !== undefined) s.connections = Number(flags.connections);
    scenarios.push(s);
  }
  const up = await startUpstream(tmp);
  const targets: Target[] = [await startMinimal(tmp, up), await startFloor(tmp, up), await startSwitchyard(tmp, up, false)];
  const tool = await wrkTool(1);
  console.log(`proxy CPU per request — wrk, ${rounds} rounds × ${duration} s, bun ${Bun.version}`);
  for (const scenario of scenarios) {
    await tool.prepare(scenario, tmp);
    const perReq = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const rps = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    for (const t of targets) await tool.run(scenario, t.origin + scenario.path, 1, tmp); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (const t of targets) {
        const pids = t.serverPids();
        const before = pids.reduce((s, p) => s + cpuSeconds(p), 0);
        const result = await tool.run(scenario, t.origin + scenario.path, duration, tmp);
        const used = pids.reduce((s, p) => s + cpuSeconds(p), 0) - before;
        perReq.get(t.name)!.push((used / result.requests) * 1e6);
        rps.get(t.name)!.push(result.requestsPerSec);
      }
    }
    console.log(scenario.name);
    const cpuOf = (name: string) => median(perReq.get(name)!);
    const rpsOf = (name: string) => median(rps.get(name)!);
    for (const t of targets) {
      console.log(`  ${t.name.padEnd(11)} ${cpuOf(t.name).toFixed(1).padStart(6)} µs/req  ${String(Math.round(rpsOf(t.name))).padStart(6)} req/s` +
        (t.name === "minimal" ? "" : `   cpu minimal/${t.name} ${(cpuOf("minimal") / cpuOf(t.name)).toFixed(2)}   req/s ${t.name}/minimal ${(rpsOf(t.name) / rpsOf("minimal")).toFixed(2)}`));
    }
  }
} finally {
  await stop();
}
