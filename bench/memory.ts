/**
 * Memory under load: does the proxy's RSS grow with the requests it serves, and does a slow reader
 * make it buffer?
 *
 *   bun run bench:memory [--part load,slow] [--targets switchyard,minimal] [--requests 1000000]
 *                        [--connections 50] [--mib 100] [--slow-kib 64] [--slow-s 10] [--rounds 2]
 *
 * load: GET /1k through each target with wrk until `--requests` are done; the serving process's
 *   VmRSS sampled every second (with the upstream's request count): start (idle, before), peak,
 *   end (last sample under load), 2 s after, and the slope of RSS against requests over the second
 *   half (linear growth = a leak per request).
 * slow: a `--mib` MiB download (bench/upstream.ts /download) through each target to a raw
 *   node:net client that reads `--slow-kib` KiB/s for `--slow-s` s (pausing the socket: the rate is
 *   set by reading), then fast; and the same to a fast client. RSS growth = peak − before (goal
 *   ≤ 16 MiB), after one unmeasured fast download per target; `--rounds` rounds, order rotated.
 *   `direct` (the client on the upstream itself) shows what the sockets and kernel hold without a
 *   proxy. See bench/README.md.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fmtInt, fmtMiB, table } from "./lib/format.ts";
import { runBench, rssSampler, statusKiB } from "./lib/procs.ts";
import { download } from "./lib/slow-client.ts";
import { linearFit, rotated } from "./lib/stats.ts";
import { directTarget, startMinimal, startSwitchyard, startUpstream, type Target, type Upstream } from "./lib/targets.ts";
import { runWrk } from "./lib/tools.ts";

const { values: flags } = parseArgs({
  options: {
    part: { type: "string", default: "load,slow" },
    targets: { type: "string" },
    requests: { type: "string", default: "1000000" },
    connections: { type: "string", default: "50" },
    mib: { type: "string", default: "100" },
    "slow-kib": { type: "string", default: "64" },
    "slow-s": { type: "string", default: "10" },
    rounds: { type: "string", default: "2" },
  },
});
const parts = flags.part!.split(",").map((s) => s.trim());
const totalRequests = Number(flags.requests);
const connections = Number(flags.connections);
const mib = Number(flags.mib);
const slowRate = Number(flags["slow-kib"]) * 1024;
const slowMs = Number(flags["slow-s"]) * 1000;
const rounds = Number(flags.rounds);
const GOAL_GROWTH_KIB = 16 * 1024;

const tmp = mkdtempSync(join(tmpdir(), "switchyard-memory-"));
const problems: string[] = [];
const rssOf = (t: Target) => t.serverPids().reduce((a, pid) => a + statusKiB(pid, "VmRSS"), 0);

async function upstreamStats(up: Upstream): Promise<{ requests: number; streamedBytes: number }> {
  const res = await fetch(`${up.origin}/__stats`, { proxy: false, signal: AbortSignal.timeout(5000) });
  return (await res.json()) as { requests: number; streamedBytes: number };
}
const resetUpstream = (up: Upstream) => fetch(`${up.origin}/__reset`, { method: "POST", proxy: false }).then((r) => r.arrayBuffer());

async function startTargets(up: Upstream, names: string[]): Promise<Target[]> {
  const out: Target[] = [];
  for (const n of names) {
    if (n === "switchyard") out.push(await startSwitchyard(tmp, up, false));
    else if (n === "minimal") out.push(await startMinimal(tmp, up));
    else if (n === "direct") out.push({ ...directTarget(up), serverPids: () => [up.proc.pid] });
    else throw new Error(`unknown target ${n} (switchyard, minimal, direct)`);
  }
  return out;
}

// ---------------------------------------------------------------- RSS under N requests

async function underLoad(up: Upstream, t: Target): Promise<string[]> {
  await resetUpstream(up);
  await Bun.sleep(1000);
  const start = rssOf(t);
  const samples: { s: number; rss: number; requests: number }[] = [];
  const t0 = performance.now();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await Bun.sleep(1000);
      if (!sampling) break;
      const rss = rssOf(t);
      samples.push({ s: (performance.now() - t0) / 1000, rss, requests: (await upstreamStats(up)).requests });
    }
  })();
  // wrk stops sending at the count but waits out its duration: interrupt it once the upstream has them all.
  const enough = new AbortController();
  const watcher = (async () => {
    while (!enough.signal.aborted) {
      await Bun.sleep(100);
      if ((await upstreamStats(up)).requests >= totalRequests) enough.abort();
    }
  })();
  let result;
  try {
    result = await runWrk({ url: `${t.origin}/1k`, connections, durationS: 900, stopAfter: totalRequests, dir: tmp, interrupt: enough.signal });
  } finally {
    enough.abort();
    sampling = false;
    await Promise.all([sampler, watcher]);
  }
  const end = samples.at(-1)?.rss ?? rssOf(t);
  await Bun.sleep(2000);
  const after = rssOf(t);
  const peak = Math.max(start, ...samples.map((s) => s.rss));
  const half = samples.filter((s) => s.s >= samples.at(-1)!.s / 2);
  const fit = linearFit(half.map((s) => s.requests), half.map((s) => s.rss));
  const perMillionKiB = fit.slope * 1e6;
  const grows = fit.r2 >= 0.7 && perMillionKiB >= 2048;
  if (result.non2xx + result.socketErrors > 0) problems.push(`load ${t.name}: ${result.non2xx} non-2xx, ${result.socketErrors} socket errors`);
  const every = Math.max(1, Math.round(samples.length / 10));
  const series = samples.filter((_, i) => i % every === 0 || i === samples.length - 1).map((s) => (s.rss / 1024).toFixed(0)).join(" ");
  console.log(`  ${t.name}: RSS MiB every ${every} s: ${series}`);
  return [
    t.name, fmtInt(result.requests), fmtInt(result.requestsPerSec), `${result.non2xx}/${result.socketErrors}`, fmtMiB(start), fmtMiB(peak), fmtMiB(end), fmtMiB(after),
    Number.isFinite(fit.slope) ? `${(fit.slope * 1e5).toFixed(0)} KiB (R² ${fit.r2.toFixed(2)})` : "-",
    grows ? `yes: ~${fmtMiB(perMillionKiB)}/1M req` : "no",
  ];
}

// ---------------------------------------------------------------- slow reader

async function slowReader(up: Upstream, t: Target, mode: "fast" | "slow"): Promise<string[]> {
  await resetUpstream(up);
  await Bun.sleep(1000);
  const before = rssOf(t);
  const sampler = rssSampler(t.serverPids(), 50);
  const origin = new URL(t.origin);
  const atSlowEnd = { rss: 0, upstreamBytes: Number.NaN };
  const r = await download({
    host: origin.hostname, port: Number(origin.port), path: `/download?mib=${mib}`,
    slow: mode === "slow" ? { bytesPerSec: slowRate, forMs: slowMs } : undefined,
    onSlowEnd: () => {
      atSlowEnd.rss = rssOf(t);
      void upstreamStats(up).then((s) => (atSlowEnd.upstreamBytes = s.streamedBytes), () => {});
    },
  });
  const peak = sampler.stop();
  await Bun.sleep(100);
  const growth = peak - before;
  const complete = r.status === 200 && r.bytes >= mib * 1024 * 1024;
  if (!complete) problems.push(`slow reader ${t.name} ${mode}: status ${r.status}, ${r.bytes} bytes`);
  const slowPart = mode === "slow"
    ? [`${fmtInt(r.bytesAtSlowEnd / 1024)} KiB (${(r.bytesAtSlowEnd / 1024 / (slowMs / 1000)).toFixed(0)} KiB/s)`, fmtMiB(atSlowEnd.upstreamBytes / 1024), fmtMiB(atSlowEnd.rss)]
    : ["-", "-", "-"];
  return [t.name, mode, `${(r.ms / 1000).toFixed(1)} s`, ...slowPart, fmtMiB(before), fmtMiB(peak), fmtMiB(growth), t.name === "direct" ? "(upstream)" : growth <= GOAL_GROWTH_KIB ? "ok" : "OVER"];
}

async function main(): Promise<void> {
  const up = await startUpstream(tmp);
  console.log(`memory — bun ${Bun.version}; logs in ${tmp}\n`);
  if (parts.includes("load")) {
    const targets = await startTargets(up, (flags.targets ?? "switchyard,minimal").split(","));
    console.log(`RSS under ${fmtInt(totalRequests)} requests: GET /1k, wrk -c ${connections}, each target in turn (its serving process's VmRSS every second)`);
    const rows: string[][] = [];
    for (const t of targets) rows.push(await underLoad(up, t));
    console.log(table(["target", "requests", "req/s", "non2xx/err", "start", "peak", "end", "2 s after", "2nd-half slope /100k req", "grows linearly"], rows));
    console.log("");
  }
  if (parts.includes("slow")) {
    const targets = await startTargets(up, (flags.targets ?? "direct,switchyard,minimal").split(","));
    console.log(`slow reader: GET /download (${mib} MiB) to a client reading ${slowRate / 1024} KiB/s for ${slowMs / 1000} s then fast, vs a fast client; ${rounds} round(s), order rotated`);
    // One unmeasured fast download each first: what a first stream allocates once is not growth per stream.
    for (const t of targets) {
      const o = new URL(t.origin);
      await download({ host: o.hostname, port: Number(o.port), path: `/download?mib=${mib}` });
    }
    const rows: string[][] = [];
    for (let round = 0; round < rounds; round++) {
      const jobs = targets.flatMap((t) => (["slow", "fast"] as const).map((mode) => ({ t, mode })));
      for (const { t, mode } of rotated(jobs, round)) rows.push(await slowReader(up, t, mode));
    }
    rows.sort((a, b) => targets.findIndex((t) => t.name === a[0]) - targets.findIndex((t) => t.name === b[0]) || a[1]!.localeCompare(b[1]!));
    console.log(table(["target", "client", "time", `read in slow ${slowMs / 1000} s`, "upstream sent by then", `RSS at ${slowMs / 1000} s`, "RSS before", "peak", "growth", "≤ 16 MiB"], rows));
    console.log("(the kernel's socket buffers hold part of what is sent but not read: see the direct row; tcp_rmem max here decides how much)");
  }
}

await runBench(main, problems, tmp);
