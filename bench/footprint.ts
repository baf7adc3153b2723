/**
 * Start-up footprint: how long from exec to the first proxied 200, and how much memory once idle,
 * for Switchyard on its built-in default config (switchyard.yaml: proxy, admin and echo listeners,
 * GET /echo proxied to the echo upstream) — from source (as is: it re-execs itself to raise Bun's
 * fetch cap; and with BUN_CONFIG_MAX_HTTP_REQUESTS already set: no re-exec) and as a single
 * executable (`bun build --compile --bytecode --format esm src/cli.ts`) — against the minimal Bun
 * fetch proxy and nginx (GET /1k through them to bench/upstream.ts). Also `switchyard validate
 * switchyard.yaml` (exec → exit) from source and compiled, next to Bun's own start-and-exit and
 * the time to merely import what validate and start load (module loading alone).
 *
 *   bun run bench:footprint [--runs 10] [--settle 1] [--builds 3] [--poll-ms 1]
 *
 * Every run starts each variant once, in an order rotated every run; medians over runs. Idle RSS
 * is VmRSS `--settle` seconds after the first 200 (serving process, and all its processes: the
 * re-exec launcher stays alive as the serving child's parent). See bench/README.md.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fmtMiB, fmtMs, table } from "./lib/format.ts";
import { nginxCommand } from "./lib/nginx.ts";
import { childPids, descendantPids, freePort, killAll, type Proc, statusKiB, stopTree } from "./lib/procs.ts";
import { median, rotated } from "./lib/stats.ts";
import { buildExecutable, timeToExit, timeToFirst200 } from "./lib/startup.ts";
import { cleanEnv, startUpstream } from "./lib/targets.ts";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: process.env.BENCH_RUNS ?? "10" },
    settle: { type: "string", default: process.env.BENCH_SETTLE ?? "1" },
    builds: { type: "string", default: process.env.BENCH_BUILDS ?? "3" },
    "poll-ms": { type: "string", default: "1" },
  },
});
const runs = Number(flags.runs);
const settleS = Number(flags.settle);
const builds = Number(flags.builds);
const pollMs = Number(flags["poll-ms"]);
if (!(runs >= 1 && builds >= 1 && settleS >= 0 && pollMs >= 0)) throw new Error("--runs and --builds must be ≥ 1, --settle and --poll-ms ≥ 0");

const REPO = join(import.meta.dir, "..");
const BUN = process.execPath;
const CAP = { BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" };
const tmp = mkdtempSync(join(tmpdir(), "switchyard-footprint-"));
const problems: string[] = [];

interface Ports {
  port: number;
  admin: number;
  echo: number;
}
interface Variant {
  label: string;
  cmd(p: Ports, run: number): Promise<string[]> | string[];
  env(p: Ports): Record<string, string | undefined>;
  path: string;
  /** The processes that serve (RSS "serving"); every process of the tree is "all". */
  serving(root: Proc): number[];
}

const defaultConfigEnv = (p: Ports, extra: Record<string, string> = {}) => cleanEnv({ PORT: String(p.port), ADMIN_PORT: String(p.admin), ECHO_PORT: String(p.echo), ...extra });
const rootOnly = (root: Proc) => [root.pid];
const childOrRoot = (root: Proc) => {
  const kids = descendantPids(root.pid);
  return kids.length ? kids : [root.pid];
};

async function main(): Promise<void> {
  const up = await startUpstream(tmp);
  const exe = join(tmp, "switchyard");
  console.log(`footprint — bun ${Bun.version}, ${runs} runs, idle RSS after ${settleS} s, polled every ${pollMs} ms; logs in ${tmp}\n`);

  // ------------------------------------------------------------ the single executable
  const buildMs: number[] = [];
  let size = 0;
  for (let i = 0; i < builds; i++) {
    const b = await buildExecutable("src/cli.ts", exe);
    buildMs.push(b.ms);
    size = b.bytes;
  }
  await Bun.write(join(tmp, "hello.ts"), 'console.log("ok");\n');
  const hello = await buildExecutable(join(tmp, "hello.ts"), join(tmp, "hello"));
  console.log(`bun build --compile --bytecode --format esm src/cli.ts: ${fmtMs(median(buildMs), 0)} median of ${builds} builds (${buildMs.map((m) => m.toFixed(0)).join(", ")} ms), executable ${fmtMiB(size / 1024)} (${size.toLocaleString("en-US")} bytes); a compiled console.log: ${fmtMiB(hello.bytes / 1024)}`);

  // Does the executable's own re-exec (no BUN_CONFIG_MAX_HTTP_REQUESTS) work?
  const probePorts = { port: freePort(), admin: freePort(), echo: freePort() };
  let compiledReexec = true;
  try {
    const r = await timeToFirst200("compiled-reexec-probe", [exe, "start"], { url: `http://127.0.0.1:${probePorts.port}/echo`, env: defaultConfigEnv(probePorts), cwd: REPO, logPath: join(tmp, "compiled-reexec-probe.log"), timeoutMs: 10_000 });
    await stopTree(r.proc);
  } catch (e) {
    compiledReexec = false;
    console.log(`NOTE: without BUN_CONFIG_MAX_HTTP_REQUESTS (its re-exec) the compiled executable does not serve: ${(e as Error).message.slice(0, 240)}; measured with the variable set only`);
  }
  console.log("");

  // ------------------------------------------------------------ cold start and idle RSS
  const variants: Variant[] = [
    { label: "source: bun src/cli.ts start (re-execs)", cmd: () => [BUN, "src/cli.ts", "start"], env: (p) => defaultConfigEnv(p), path: "/echo", serving: childOrRoot },
    { label: "source, cap env set (no re-exec)", cmd: () => [BUN, "src/cli.ts", "start"], env: (p) => defaultConfigEnv(p, CAP), path: "/echo", serving: rootOnly },
    ...(compiledReexec ? [{ label: "compiled (re-execs)", cmd: () => [exe, "start"], env: (p: Ports) => defaultConfigEnv(p), path: "/echo", serving: childOrRoot }] : []),
    { label: "compiled, cap env set", cmd: () => [exe, "start"], env: (p) => defaultConfigEnv(p, CAP), path: "/echo", serving: rootOnly },
    { label: "minimal Bun fetch proxy", cmd: (p) => [BUN, join(REPO, "bench", "minimal-proxy.ts"), String(p.port), up.origin], env: () => cleanEnv(CAP), path: "/1k", serving: rootOnly },
    ...(Bun.which("nginx")
      ? [{ label: "nginx (1 worker)", cmd: (p: Ports, run: number) => nginxCommand(join(tmp, `nginx-${run}`), { port: p.port, upstream: up.origin, keepalive: 256 }), env: () => cleanEnv(), path: "/1k", serving: (root: Proc) => childPids(root.pid) }]
      : []),
  ];
  const ms = new Map<string, number[]>(variants.map((v) => [v.label, []]));
  const rssServing = new Map<string, number[]>(variants.map((v) => [v.label, []]));
  const rssAll = new Map<string, number[]>(variants.map((v) => [v.label, []]));
  for (let run = 0; run < runs; run++) {
    for (const v of rotated(variants, run)) {
      const p = { port: freePort(), admin: freePort(), echo: freePort() };
      const logPath = join(tmp, `${v.label.replace(/[^a-z0-9]+/gi, "_")}-${run}.log`);
      let proc: Proc | undefined;
      try {
        const r = await timeToFirst200(v.label, await v.cmd(p, run), { url: `http://127.0.0.1:${p.port}${v.path}`, env: v.env(p), cwd: REPO, logPath, pollMs });
        proc = r.proc;
        ms.get(v.label)!.push(r.ms);
        await Bun.sleep(settleS * 1000);
        rssServing.get(v.label)!.push(v.serving(r.proc).reduce((a, pid) => a + statusKiB(pid, "VmRSS"), 0));
        rssAll.get(v.label)!.push([r.proc.pid, ...descendantPids(r.proc.pid)].reduce((a, pid) => a + statusKiB(pid, "VmRSS"), 0));
      } catch (e) {
        problems.push(`run ${run + 1} ${v.label}: ${(e as Error).message}`);
        proc = undefined;
      } finally {
        if (proc) await stopTree(proc);
      }
    }
    process.stderr.write(`  run ${run + 1}/${runs}: ${variants.map((v) => `${v.label.split(/[:(,]/)[0]!.trim()} ${ms.get(v.label)!.at(-1)?.toFixed(0) ?? "ERR"}`).join(" · ")}\n`);
  }
  console.log(`cold start: exec → first proxied 200 (Switchyard: GET /echo on switchyard.yaml; minimal, nginx: GET /1k to bench/upstream.ts), median of ${runs} runs; idle RSS ${settleS} s later`);
  console.log(table(["variant", "median", "min", "max", "idle RSS serving", "idle RSS all procs"], variants.map((v) => {
    const xs = ms.get(v.label)!;
    return [v.label, fmtMs(median(xs)), fmtMs(Math.min(...xs)), fmtMs(Math.max(...xs)), fmtMiB(median(rssServing.get(v.label)!)), fmtMiB(median(rssAll.get(v.label)!))];
  })));
  const m = (label: string) => median(ms.get(label) ?? []);
  console.log(`ratios: re-exec/no-re-exec ${(m(variants[0]!.label) / m(variants[1]!.label)).toFixed(2)} · compiled/source (cap set) ${(m("compiled, cap env set") / m(variants[1]!.label)).toFixed(2)} · source (cap set)/minimal ${(m(variants[1]!.label) / m("minimal Bun fetch proxy")).toFixed(2)}\n`);

  // ------------------------------------------------------------ validate
  const checks: { label: string; cmd: string[]; expect?: RegExp }[] = [
    { label: "source: bun src/cli.ts validate switchyard.yaml", cmd: [BUN, "src/cli.ts", "validate", "switchyard.yaml"], expect: /: ok/ },
    { label: "compiled: switchyard validate switchyard.yaml", cmd: [exe, "validate", "switchyard.yaml"], expect: /: ok/ },
    { label: "reference: bun -e 0 (Bun's start and exit)", cmd: [BUN, "-e", "0"] },
    { label: "reference: bun -e 'import src/config/load.ts'", cmd: [BUN, "-e", 'await import("./src/config/load.ts")'] },
    { label: "reference: bun -e 'import src/main.ts' (all start loads)", cmd: [BUN, "-e", 'await import("./src/main.ts")'] },
    { label: "reference: a compiled console.log", cmd: [join(tmp, "hello")], expect: /ok/ },
  ];
  const vms = new Map<string, number[]>(checks.map((c) => [c.label, []]));
  for (let run = 0; run < runs; run++) {
    for (const c of rotated(checks, run)) {
      const r = await timeToExit(c.cmd, cleanEnv(), REPO);
      if (r.code !== 0 || (c.expect && !c.expect.test(r.out))) problems.push(`validate run ${run + 1} ${c.label}: exit ${r.code}: ${r.out.slice(0, 200)}`);
      else vms.get(c.label)!.push(r.ms);
    }
  }
  console.log(`validate: exec → exit, median of ${runs} runs`);
  console.log(table(["command", "median", "min", "max"], checks.map((c) => {
    const xs = vms.get(c.label)!;
    return [c.label, fmtMs(median(xs)), fmtMs(Math.min(...xs)), fmtMs(Math.max(...xs))];
  })));
}

let code = 0;
try {
  await main();
} catch (e) {
  problems.push(`fatal: ${(e as Error).stack ?? String(e)}`);
} finally {
  await killAll();
}
if (problems.length) {
  code = 1;
  console.log(`\n${problems.length} problem(s) (logs kept in ${tmp}):`);
  for (const p of problems) console.log(`  - ${p}`);
} else rmSync(tmp, { recursive: true, force: true });
process.exit(code);
