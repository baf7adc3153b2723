/**
 * One worker or two: Switchyard with `--workers 1` and `--workers 2` (two processes on the same
 * port with reusePort, each with its own fetch pool; a supervisor between them and the launcher),
 * GET /1k through wrk, req/s and the proxy's CPU time per request (utime+stime of every process
 * under the launcher). On a 2-core machine the load tool and the upstream share the cores, so a
 * second worker competes with them; the minimal proxy is the one-process reference.
 *
 *   bun run bench:workers [--connections 50,256] [--rounds 3] [--duration 5] [--no-minimal]
 *
 * Targets alternate over rounds (order rotated); medians; ratios are medians of per-round ratios.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fmtInt, fmtRatio, table } from "./lib/format.ts";
import { cpuSeconds, runBench } from "./lib/procs.ts";
import { median, rotated } from "./lib/stats.ts";
import { startMinimal, startSwitchyardWith, startUpstream, type Target } from "./lib/targets.ts";
import { runWrk } from "./lib/tools.ts";

const { values: flags } = parseArgs({
  options: {
    connections: { type: "string", default: "50,256" },
    rounds: { type: "string", default: "3" },
    duration: { type: "string", default: "5" },
    "no-minimal": { type: "boolean", default: false },
  },
});
const levels = flags.connections!.split(",").map(Number);
const rounds = Number(flags.rounds);
const durationS = Number(flags.duration);

const tmp = mkdtempSync(join(tmpdir(), "switchyard-workers-"));
const problems: string[] = [];

async function main(): Promise<void> {
  const up = await startUpstream(tmp);
  const targets: (Target & { label: string })[] = [
    await startSwitchyardWith(tmp, up, { label: "workers-1", args: ["--workers", "1"] }),
    await startSwitchyardWith(tmp, up, { label: "workers-2", args: ["--workers", "2"] }),
  ];
  if (!flags["no-minimal"]) targets.push({ ...(await startMinimal(tmp, up)), label: "minimal" });
  console.log(`1 vs 2 workers — bun ${Bun.version}, wrk, GET /1k, ${rounds} rounds × ${durationS} s, order rotated; CPU: every process under the launcher`);
  for (const t of targets) console.log(`  ${t.label.padEnd(10)} processes ${t.serverPids().join(",")}`);
  console.log("");
  for (const c of levels) {
    const rps = new Map<string, number[]>(targets.map((t) => [t.label, []]));
    const cpu = new Map<string, number[]>(targets.map((t) => [t.label, []]));
    for (const t of targets) await runWrk({ url: `${t.origin}/1k`, connections: c, durationS: 1, dir: tmp });
    for (let round = 0; round < rounds; round++) {
      for (const t of rotated(targets, round)) {
        const pids = t.serverPids();
        const before = pids.reduce((a, p) => a + cpuSeconds(p), 0);
        const r = await runWrk({ url: `${t.origin}/1k`, connections: c, durationS, dir: tmp });
        const used = pids.reduce((a, p) => a + cpuSeconds(p), 0) - before;
        if (r.non2xx + r.socketErrors) problems.push(`c${c} round ${round + 1} ${t.label}: ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
        rps.get(t.label)!.push(r.requestsPerSec);
        cpu.get(t.label)!.push((used / r.requests) * 1e6);
        process.stderr.write(`  c${c} round ${round + 1} ${t.label}: ${fmtInt(r.requestsPerSec)} req/s, ${((used / r.requests) * 1e6).toFixed(1)} µs CPU/req\n`);
        if (!t.healthy()) throw new Error(`${t.label} died`);
        await Bun.sleep(300);
      }
    }
    const ratio = (a: string, b: string, m: Map<string, number[]>) => median(m.get(a)!.map((x, i) => x / m.get(b)![i]!));
    console.log(`${c} clients:`);
    console.log(table(["target", "req/s", "µs CPU/req", "req/s per round"], targets.map((t) => [
      t.label, fmtInt(median(rps.get(t.label)!)), median(cpu.get(t.label)!).toFixed(1), rps.get(t.label)!.map(fmtInt).join(" "),
    ])));
    console.log(`ratios (median of per-round ratios): req/s workers-2/workers-1 ${fmtRatio(ratio("workers-2", "workers-1", rps))} · CPU/req workers-2/workers-1 ${fmtRatio(ratio("workers-2", "workers-1", cpu))}` +
      (rps.has("minimal") ? ` · req/s workers-1/minimal ${fmtRatio(ratio("workers-1", "minimal", rps))} · workers-2/minimal ${fmtRatio(ratio("workers-2", "minimal", rps))}` : ""));
    console.log("");
  }
}

await runBench(main, problems, tmp);
