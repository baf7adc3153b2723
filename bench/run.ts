/**
 * Switchyard's benchmark: every scenario against every target, in one run, with one load tool.
 *
 *   bun run bench [--duration S] [--rounds N] [--warmup S] [--scenario a,b|all]
 *                 [--targets direct,minimal,floor,switchyard,switchyard-log,nginx] [--connections N]
 *                 [--threads N] [--nginx-workers N] [--tool wrk|oha] [--out FILE]
 *
 * (each flag also reads BENCH_<NAME> from the environment, e.g. BENCH_DURATION=2).
 * Targets are measured alternately over several short rounds (the machine is noisy); the table
 * shows medians and the median of per-round ratios. See bench/README.md.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { killAll, rssSampler, runBounded, statusKiB } from "./lib/procs.ts";
import { median, rotated } from "./lib/stats.ts";
import {
  ALL_TARGETS, directTarget, StartError, startFloor, startMinimal, startNginx, startSwitchyard, startUpstream, type Target, type TargetName, type Upstream,
} from "./lib/targets.ts";
import { type HttpTool, LoadError, type LoadResult, ohaTool, runWsLoad, type Scenario, wrkTool } from "./lib/tools.ts";

const BENCH_DIR = import.meta.dir;
const REPO = join(BENCH_DIR, "..");
const DEFAULT_TARGETS: TargetName[] = ["direct", "minimal", "floor", "switchyard", "nginx"];
/** Switchyard's goal: at least this fraction of the minimal proxy's req/s. */
const TARGET_RATIO = 0.9;

// ---------------------------------------------------------------- options

const USAGE = `usage: bun run bench [options]     (or: bun bench/run.ts [options])
  --duration S        seconds per measurement (default: each scenario's own, 5)   BENCH_DURATION
  --rounds N          rounds; each round measures every target once (default 3)   BENCH_ROUNDS
  --warmup S          unmeasured warm-up per target and scenario (default 1)      BENCH_WARMUP
  --scenario LIST     comma-separated scenario names, or "all" (default: the
                      scenarios without "default": false)                         BENCH_SCENARIO
  --targets LIST      of ${ALL_TARGETS.join(",")}
                      (default ${DEFAULT_TARGETS.join(",")}; nginx skipped when not on PATH) BENCH_TARGETS
  --connections N     override every scenario's connection count                  BENCH_CONNECTIONS
  --threads N         wrk threads (default 1: the tool shares 2 cores)            BENCH_THREADS
  --nginx-workers N   nginx worker_processes (default 1, like the Bun proxies)    BENCH_NGINX_WORKERS
  --tool wrk|oha      force the HTTP load tool (default: oha if on PATH, else wrk) BENCH_TOOL
  --out FILE          JSON results (default bench/results/latest.json)            BENCH_OUT`;

const { values: flags } = parseArgs({
  options: {
    duration: { type: "string" },
    rounds: { type: "string" },
    warmup: { type: "string" },
    scenario: { type: "string" },
    targets: { type: "string" },
    connections: { type: "string" },
    threads: { type: "string" },
    "nginx-workers": { type: "string" },
    tool: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}

function opt(name: keyof typeof flags & string): string | undefined {
  const v = flags[name];
  if (typeof v === "string") return v;
  return process.env[`BENCH_${name.toUpperCase().replaceAll("-", "_")}`];
}

function positive(name: string, text: string | undefined, fallback: number | undefined, integer: boolean): number | undefined {
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    console.error(`--${name}: expected a positive ${integer ? "integer" : "number"}, got "${text}"\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

const options = {
  duration: positive("duration", opt("duration"), undefined, false),
  rounds: positive("rounds", opt("rounds"), 3, true)!,
  warmup: (() => {
    const w = opt("warmup");
    return w === "0" ? 0 : positive("warmup", w, 1, false)!;
  })(),
  connections: positive("connections", opt("connections"), undefined, true),
  threads: positive("threads", opt("threads"), 1, true)!,
  nginxWorkers: positive("nginx-workers", opt("nginx-workers"), 1, true)!,
  out: opt("out") ?? join(BENCH_DIR, "results", "latest.json"),
};

// ---------------------------------------------------------------- scenarios

function isScenario(v: unknown): v is Scenario {
  if (typeof v !== "object" || v === null) return false;
  const s = v as Record<string, unknown>;
  return typeof s.name === "string" && typeof s.description === "string" && (s.kind === "http" || s.kind === "ws") &&
    typeof s.method === "string" && typeof s.path === "string" && s.path.startsWith("/") && typeof s.bodyBytes === "number" &&
    typeof s.duration === "number" && typeof s.connections === "number" &&
    (s.messageBytes === undefined || typeof s.messageBytes === "number") && (s.default === undefined || typeof s.default === "boolean");
}

async function loadScenarios(): Promise<Scenario[]> {
  const dir = join(BENCH_DIR, "scenarios");
  const all: Scenario[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
    const data: unknown = await Bun.file(join(dir, file)).json();
    if (!isScenario(data)) throw new Error(`bench/scenarios/${file}: not a valid scenario (see bench/lib/tools.ts Scenario)`);
    all.push(data);
  }
  const order = ["get-1k", "get-64k", "post-1m", "sse", "websocket-echo"];
  const rank = (s: Scenario) => (order.indexOf(s.name) === -1 ? order.length : order.indexOf(s.name));
  all.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const wanted = opt("scenario");
  let chosen: Scenario[];
  if (wanted === undefined || wanted === "") chosen = all.filter((s) => s.default !== false);
  else if (wanted === "all") chosen = all;
  else {
    const names = wanted.split(",").map((n) => n.trim()).filter(Boolean);
    const unknown = names.filter((n) => !all.some((s) => s.name === n));
    if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(", ")} (known: ${all.map((s) => s.name).join(", ")})`);
    chosen = all.filter((s) => names.includes(s.name));
  }
  return chosen.map((s) => ({
    ...s,
    duration: options.duration ?? s.duration,
    connections: options.connections ?? s.connections,
  }));
}

// ---------------------------------------------------------------- stats & formatting

const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
const fmtMs = (s: number) => (Number.isFinite(s) ? (s * 1000).toFixed(2) : "-");
const fmtMiB = (kib: number | null) => (kib === null || kib === 0 ? "-" : `${(kib / 1024).toFixed(1)} MiB`);
const fmtRatio = (r: number) => (Number.isFinite(r) ? r.toFixed(2) : "-");

function pad(cells: string[], widths: number[], alignLeft: boolean[]): string {
  return cells.map((c, i) => (alignLeft[i] ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
}

function table(header: string[], rows: string[][], alignLeft: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [pad(header, widths, alignLeft), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map((r) => pad(r, widths, alignLeft))].join("\n");
}

// ---------------------------------------------------------------- measurement

interface Measurement extends LoadResult {
  round: number;
  /** Peak summed VmRSS of the target's server process(es) during the run; null for direct. */
  peakRssKiB: number | null;
  /** Distinct client connections the upstream saw during the run (new upstream connections). */
  upstreamConnections: number;
  upstreamRequests: number;
}

interface TargetResult {
  rounds: (Measurement | { round: number; error: string })[];
  median: { requestsPerSec: number; p50: number; p99: number; upstreamConnections: number };
  peakRssKiB: number | null;
  non2xx: number;
  socketErrors: number;
  failedRounds: number;
}

interface ScenarioResult {
  scenario: Scenario;
  tool: string;
  targets: Partial<Record<TargetName, TargetResult>>;
  /** e.g. "switchyard/minimal": median over rounds of the req/s ratio. */
  ratios: Record<string, number>;
}

async function upstreamStats(up: Upstream): Promise<{ requests: number; connections: number }> {
  const res = await fetch(`${up.origin}/__stats`, { proxy: false, signal: AbortSignal.timeout(5000) });
  const data: unknown = await res.json();
  const d = data as { requests?: unknown; connections?: unknown };
  return { requests: Number(d.requests), connections: Number(d.connections) };
}

async function measure(tool: HttpTool, scenario: Scenario, target: Target, up: Upstream, durationS: number, tmp: string, round: number): Promise<Measurement> {
  await fetch(`${up.origin}/__reset`, { method: "POST", proxy: false, signal: AbortSignal.timeout(5000) });
  const pids = target.serverPids();
  const sampler = pids.length ? rssSampler(pids) : undefined;
  let result: LoadResult;
  let peak: number | null = null;
  try {
    result = scenario.kind === "ws"
      ? await runWsLoad(scenario, target.origin.replace(/^http/, "ws") + scenario.path, durationS)
      : await tool.run(scenario, target.origin + scenario.path, durationS, tmp);
  } finally {
    peak = sampler ? sampler.stop() : null;
  }
  const stats = await upstreamStats(up);
  if (!target.healthy()) throw new StartError(`${target.name} died during ${scenario.name}`);
  return { ...result, round, peakRssKiB: peak, upstreamConnections: stats.connections, upstreamRequests: stats.requests };
}

function aggregate(rounds: TargetResult["rounds"]): TargetResult {
  const ok = rounds.filter((r): r is Measurement => !("error" in r));
  const peaks = ok.map((r) => r.peakRssKiB).filter((p): p is number => p !== null);
  return {
    rounds,
    median: {
      requestsPerSec: median(ok.map((r) => r.requestsPerSec)),
      p50: median(ok.map((r) => r.p50)),
      p99: median(ok.map((r) => r.p99)),
      upstreamConnections: median(ok.map((r) => r.upstreamConnections)),
    },
    peakRssKiB: peaks.length ? Math.max(...peaks) : null,
    non2xx: ok.reduce((a, r) => a + r.non2xx, 0),
    socketErrors: ok.reduce((a, r) => a + r.socketErrors, 0),
    failedRounds: rounds.length - ok.length,
  };
}

function ratios(targets: ScenarioResult["targets"], rounds: number): Record<string, number> {
  const out: Record<string, number> = {};
  const rpsIn = (name: TargetName, round: number): number => {
    const m = targets[name]?.rounds.find((r) => r.round === round);
    return m === undefined || "error" in m ? Number.NaN : m.requestsPerSec;
  };
  for (const subject of ["switchyard", "switchyard-log", "floor"] as const) {
    if (!targets[subject]) continue;
    for (const ref of subject === "floor" ? (["minimal"] as const) : (["minimal", "floor", "nginx", "direct"] as const)) {
      if (!targets[ref]) continue;
      const per = Array.from({ length: rounds }, (_, r) => rpsIn(subject, r) / rpsIn(ref, r));
      out[`${subject}/${ref}`] = median(per);
    }
  }
  return out;
}

function scenarioBlock(sr: ScenarioResult, order: Target[], rounds: number): string {
  const s = sr.scenario;
  const what = s.kind === "ws"
    ? `WebSocket ${s.path}, ${s.messageBytes ?? 128} B messages, ${s.connections} connections (ws-load; req/s = echoed messages/s)`
    : `${s.method} ${s.path}${s.bodyBytes ? ` (${fmtInt(s.bodyBytes)} B body)` : ""}, ${s.connections} connections (${sr.tool})`;
  const head = `${s.name}: ${what}, ${rounds} round(s) × ${s.duration} s`;
  const rows: string[][] = [];
  for (const t of order) {
    const r = sr.targets[t.name];
    if (!r) continue;
    rows.push([
      t.name, fmtInt(r.median.requestsPerSec), fmtMs(r.median.p50), fmtMs(r.median.p99), fmtMiB(r.peakRssKiB),
      fmtInt(r.median.upstreamConnections),
      `${r.non2xx}/${r.socketErrors}${r.failedRounds ? ` (${r.failedRounds} failed)` : ""}`,
      r.rounds.map((m) => ("error" in m ? "ERR" : fmtInt(m.requestsPerSec))).join(" "),
    ]);
  }
  const t = table(["target", "req/s", "p50 ms", "p99 ms", "peak RSS", "up conns", "non2xx/err", "req/s per round"], rows, [true, false, false, false, false, false, false, true]);
  const ratioText = Object.entries(sr.ratios).map(([k, v]) => `${k} ${fmtRatio(v)}`).join(" · ");
  return `${head}\n${t}\nratios (median of per-round req/s ratios): ${ratioText || "-"}`;
}

// ---------------------------------------------------------------- main

let tmp = "";
let interrupted = false;

async function cleanupAndExit(code: number): Promise<never> {
  await killAll();
  process.exit(code);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping every child process…${tmp ? ` (logs in ${tmp})` : ""}`);
    void cleanupAndExit(130);
  });
}

async function pickTool(): Promise<HttpTool> {
  const forced = opt("tool");
  if (forced !== undefined && forced !== "oha" && forced !== "wrk") throw new Error(`--tool must be wrk or oha, not "${forced}"`);
  if (forced === "oha" || (forced === undefined && Bun.which("oha"))) return ohaTool();
  if (!Bun.which("wrk")) throw new Error("neither oha nor wrk is on PATH");
  return wrkTool(options.threads);
}

async function gitInfo(): Promise<{ commit: string; dirty: boolean } | null> {
  const head = await runBounded(["git", "-C", REPO, "rev-parse", "HEAD"], 5000);
  if (head.code !== 0) return null;
  const status = await runBounded(["git", "-C", REPO, "status", "--porcelain"], 5000);
  return { commit: head.stdout.trim(), dirty: status.stdout.trim() !== "" };
}

async function main(): Promise<number> {
  const scenarios = await loadScenarios();
  if (scenarios.length === 0) throw new Error("no scenario selected");
  const tool = await pickTool();

  const targetText = opt("targets");
  let wantedTargets: TargetName[] = DEFAULT_TARGETS;
  if (targetText) {
    const names = targetText.split(",").map((n) => n.trim()).filter(Boolean);
    const bad = names.filter((n) => !(ALL_TARGETS as readonly string[]).includes(n));
    if (bad.length) throw new Error(`unknown target(s): ${bad.join(", ")} (known: ${ALL_TARGETS.join(", ")})`);
    wantedTargets = names as TargetName[];
  }
  const hasNginx = Bun.which("nginx") !== null;
  if (!hasNginx && wantedTargets.includes("nginx")) {
    console.error("nginx is not on PATH: the nginx target is skipped");
    wantedTargets = wantedTargets.filter((t) => t !== "nginx");
  }
  const nginxVersion = hasNginx ? (/nginx\/(\S+)/.exec((await runBounded(["nginx", "-v"], 5000)).stderr)?.[1] ?? "unknown") : null;

  tmp = mkdtempSync(join(tmpdir(), "switchyard-bench-"));
  const failures: string[] = [];
  const started = new Date();

  // Start everything once; a target that cannot start fails the run.
  const up = await startUpstream(tmp);
  const targets: Target[] = [];
  for (const name of wantedTargets) {
    if (name === "direct") targets.push(directTarget(up));
    else if (name === "minimal") targets.push(await startMinimal(tmp, up));
    else if (name === "floor") targets.push(await startFloor(tmp, up));
    else if (name === "switchyard") targets.push(await startSwitchyard(tmp, up, false));
    else if (name === "switchyard-log") targets.push(await startSwitchyard(tmp, up, true));
    else targets.push(await startNginx(tmp, up, options.nginxWorkers));
  }
  const idleRss = Object.fromEntries(targets.map((t) => [t.name, t.serverPids().reduce((a, pid) => a + statusKiB(pid, "VmRSS"), 0)]));

  const totalS = scenarios.reduce((a, s) => a + targets.length * (options.rounds * (s.duration + 0.5) + (options.warmup ? options.warmup + 0.5 : 0)), 0);
  console.log(`Switchyard bench — ${tool.name} ${tool.version} (HTTP) + bench/ws-load.ts (WebSocket), bun ${Bun.version}${nginxVersion ? `, nginx ${nginxVersion}` : ""}, ${cpus().length} CPUs`);
  console.log(`rounds ${options.rounds}, warm-up ${options.warmup} s, scenarios ${scenarios.map((s) => s.name).join(", ")} — about ${Math.ceil(totalS / 60)} min`);
  for (const t of targets) console.log(`  ${t.name.padEnd(15)} ${t.origin.padEnd(24)} ${t.describe}${t.serverPids().length ? ` [pid ${t.serverPids().join(",")}]` : ""}`);
  console.log("");

  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    if (scenario.kind === "http") await tool.prepare(scenario, tmp);
    // The floor proxy serves HTTP only.
    const serving = targets.filter((t) => !(t.httpOnly && scenario.kind === "ws"));
    const perTarget: Partial<Record<TargetName, TargetResult["rounds"]>> = {};
    for (const t of serving) perTarget[t.name] = [];
    if (options.warmup > 0) {
      for (const t of serving) {
        try {
          await measure(tool, scenario, t, up, options.warmup, tmp, -1);
        } catch (e) {
          if (e instanceof StartError) throw e;
          // the measured rounds will show it
        }
      }
    }
    for (let round = 0; round < options.rounds; round++) {
      // Rotate the order every round so that no target always runs first (or right after another).
      const order = rotated(serving, round);
      for (const t of order) {
        let m: Measurement | { round: number; error: string };
        try {
          m = await measure(tool, scenario, t, up, scenario.duration, tmp, round);
          process.stderr.write(`  ${scenario.name} round ${round + 1}/${options.rounds} ${t.name}: ${fmtInt(m.requestsPerSec)} req/s, p99 ${fmtMs(m.p99)} ms${m.non2xx + m.socketErrors ? `, ${m.non2xx} non-2xx, ${m.socketErrors} errors` : ""}\n`);
          if (m.non2xx > 0) failures.push(`${scenario.name} round ${round + 1} ${t.name}: ${m.non2xx} non-2xx responses`);
          if (m.socketErrors > 0) failures.push(`${scenario.name} round ${round + 1} ${t.name}: ${m.socketErrors} socket/protocol errors`);
        } catch (e) {
          if (interrupted) await new Promise<never>(() => {}); // Ctrl-C: the signal handler exits
          if (e instanceof StartError) throw e;
          if (!(e instanceof LoadError)) throw e;
          m = { round, error: e.message };
          failures.push(`${scenario.name} round ${round + 1} ${t.name}: ${e.message}`);
          process.stderr.write(`  ${scenario.name} round ${round + 1}/${options.rounds} ${t.name}: ERROR ${e.message}\n`);
        }
        perTarget[t.name]!.push(m);
        await Bun.sleep(300);
      }
    }
    const aggregated: ScenarioResult["targets"] = {};
    for (const t of serving) aggregated[t.name] = aggregate(perTarget[t.name]!);
    const sr: ScenarioResult = { scenario, tool: scenario.kind === "ws" ? "ws-load" : tool.name, targets: aggregated, ratios: ratios(aggregated, options.rounds) };
    results.push(sr);
    console.log(`${scenarioBlock(sr, targets, options.rounds)}\n`);
  }

  // Summary: the ratios that matter, one line per scenario.
  const ratioKeys = [...new Set(results.flatMap((r) => Object.keys(r.ratios)))];
  if (ratioKeys.length) {
    const rows = results.map((r) => {
      const vsMinimal = r.ratios["switchyard/minimal"];
      const verdict = vsMinimal === undefined || !Number.isFinite(vsMinimal) ? "-" : vsMinimal >= TARGET_RATIO ? "ok" : "BELOW";
      return [r.scenario.name, ...ratioKeys.map((k) => fmtRatio(r.ratios[k] ?? Number.NaN)), verdict];
    });
    console.log(`Summary — median of per-round req/s ratios (goal: switchyard/minimal ≥ ${TARGET_RATIO.toFixed(2)})`);
    console.log(table(["scenario", ...ratioKeys, "goal"], rows, [true, ...ratioKeys.map(() => false), true]));
    console.log("");
  }

  const finalRss = Object.fromEntries(targets.map((t) => [t.name, t.serverPids().reduce((a, pid) => a + statusKiB(pid, "VmHWM"), 0)]));
  const report = {
    meta: {
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      bun: Bun.version,
      tool: { name: tool.name, version: tool.version, threads: tool.name === "wrk" ? options.threads : undefined },
      wsTool: "bench/ws-load.ts",
      nginx: nginxVersion,
      cpus: cpus().length,
      git: await gitInfo(),
      options: { ...options, scenarios: scenarios.map((s) => s.name), targets: targets.map((t) => t.name) },
      units: { requestsPerSec: "1/s (ws: echoed messages/s)", p50: "s", p99: "s", rss: "KiB" },
      goal: `switchyard/minimal requestsPerSec ratio ≥ ${TARGET_RATIO}`,
    },
    targets: targets.map((t) => ({ name: t.name, origin: t.origin, describe: t.describe, pids: t.serverPids(), idleRssKiB: idleRss[t.name] ?? null, hwmKiB: finalRss[t.name] ?? null })),
    scenarios: results,
    failures,
  };
  await Bun.write(options.out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`JSON: ${options.out}`);

  if (failures.length) {
    console.log(`\n${failures.length} problem(s):`);
    for (const f of failures) console.log(`  - ${f}`);
    console.log(`(process logs kept in ${tmp})`);
    return 1;
  }
  return 0;
}

let code: number;
try {
  code = await main();
} catch (e) {
  console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
  if (tmp) console.error(`(process logs kept in ${tmp})`);
  code = 1;
}
if (!interrupted) {
  await killAll();
  if (code === 0 && tmp) rmSync(tmp, { recursive: true, force: true });
  process.exit(code);
}
