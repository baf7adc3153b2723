/**
 * Load tools, normalized to oha's names: requestsPerSec, p50, p99 (seconds). One HTTP tool per run
 * (oha when on PATH, else wrk): figures from different tools are not comparable (bun-notes).
 * WebSocket scenarios always use bench/ws-load.ts.
 */
import { join } from "node:path";
import { runBounded } from "./procs.ts";

export interface Scenario {
  name: string;
  description: string;
  kind: "http" | "ws";
  method: string;
  path: string;
  bodyBytes: number;
  duration: number;
  connections: number;
  messageBytes?: number;
  /** false: only run when asked for by name (or `--scenario all`). Default true. */
  default?: boolean;
}

export interface LoadResult {
  requestsPerSec: number;
  /** Seconds, as oha reports them. */
  p50: number;
  p99: number;
  requests: number;
  /** Responses that were not 2xx (wrk: status ≥ 400; oha: every non-2xx). */
  non2xx: number;
  /** Connect/read/write errors, timeouts, failed WebSocket connections or messages. */
  socketErrors: number;
  durationS: number;
}

export interface HttpTool {
  name: "oha" | "wrk";
  version: string;
  /** Writes whatever the scenario needs (Lua script, body file) under `dir`. */
  prepare(scenario: Scenario, dir: string): Promise<void>;
  run(scenario: Scenario, url: string, durationS: number, dir: string): Promise<LoadResult>;
}

export class LoadError extends Error {}

function num(value: unknown, what: string): number {
  if (typeof value !== "number" || Number.isNaN(value)) throw new LoadError(`load tool output has no number for ${what}`);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------- wrk

/** The Lua done() hook prints one machine-readable line; wrk's own report is ignored. */
function wrkScript(scenario: Scenario): string {
  const lines: string[] = [];
  if (scenario.method !== "GET") lines.push(`wrk.method = "${scenario.method}"`);
  if (scenario.bodyBytes > 0) {
    lines.push(`wrk.body = string.rep("x", ${scenario.bodyBytes})`);
    lines.push(`wrk.headers["Content-Type"] = "application/octet-stream"`);
  }
  lines.push(WRK_DONE_HOOK);
  return lines.join("\n");
}

/** wrk's done() hook: one machine-readable line (WRKJSON {...}); wrk's own report is ignored. */
const WRK_DONE_HOOK = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"duration":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

function parseWrk(r: { code: number | null; stdout: string; stderr: string }): LoadResult {
  const line = r.stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (r.code !== 0 || line === undefined) throw new LoadError(`wrk failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
  const raw: unknown = JSON.parse(line.slice("WRKJSON ".length));
  if (!isRecord(raw)) throw new LoadError("wrk output is not an object");
  const durationSec = num(raw.duration, "duration") / 1e6;
  const requests = num(raw.requests, "requests");
  return {
    requestsPerSec: requests / durationSec,
    p50: num(raw.p50, "p50") / 1e6,
    p99: num(raw.p99, "p99") / 1e6,
    requests,
    non2xx: num(raw.status, "status errors"),
    socketErrors: num(raw.connect, "connect") + num(raw.read, "read") + num(raw.write, "write") + num(raw.timeout, "timeout"),
    durationS: durationSec,
  };
}

/**
 * One wrk run of GET `url` outside the scenario files (memory, reuse, workers benches).
 * `stopAfter`: each thread stops sending once it has seen its share of that many responses; wrk
 * itself still waits for `durationS` unless `interrupt` fires (SIGINT: it reports and exits), so
 * the caller watches for the count (e.g. at the upstream) and interrupts. `lua`: extra lines.
 */
export async function runWrk(o: { url: string; connections: number; durationS: number; dir: string; threads?: number; stopAfter?: number; lua?: string; interrupt?: AbortSignal }): Promise<LoadResult> {
  const threads = Math.max(1, Math.min(o.threads ?? 1, o.connections));
  const script = [o.lua ?? ""];
  if (o.stopAfter !== undefined) {
    script.push(`local seen = 0
function response(status, headers, body)
  seen = seen + 1
  if seen >= ${Math.ceil(o.stopAfter / threads)} then wrk.thread:stop() end
end`);
  }
  script.push(WRK_DONE_HOOK);
  const path = join(o.dir, `wrk-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.lua`);
  await Bun.write(path, script.join("\n"));
  const cmd = ["wrk", "-t", String(threads), "-c", String(o.connections), "-d", `${o.durationS}s`, "--timeout", "10s", "-s", path, o.url];
  const r = await runBounded(cmd, (o.durationS + 30) * 1000, undefined, undefined, o.interrupt);
  if (r.timedOut) throw new LoadError(`wrk did not finish in time: ${cmd.join(" ")}`);
  return parseWrk(r);
}

export async function wrkTool(threads: number): Promise<HttpTool> {
  const v = await runBounded(["wrk", "-v"], 5000);
  const version = /wrk\s+(\S+)/.exec(v.stdout + v.stderr)?.[1] ?? "unknown";
  return {
    name: "wrk",
    version,
    async prepare(scenario, dir) {
      await Bun.write(join(dir, `${scenario.name}.lua`), wrkScript(scenario));
    },
    async run(scenario, url, durationS, dir) {
      const t = Math.max(1, Math.min(threads, scenario.connections));
      const cmd = ["wrk", "-t", String(t), "-c", String(scenario.connections), "-d", `${durationS}s`, "--timeout", "10s", "-s", join(dir, `${scenario.name}.lua`), url];
      const r = await runBounded(cmd, (durationS + 30) * 1000);
      if (r.timedOut) throw new LoadError(`wrk did not finish in time: ${cmd.join(" ")}`);
      return parseWrk(r);
    },
  };
}

// ---------------------------------------------------------------- oha

export async function ohaTool(): Promise<HttpTool> {
  const v = await runBounded(["oha", "--version"], 5000);
  const version = /oha\s+(\S+)/.exec(v.stdout)?.[1] ?? "unknown";
  const help = await runBounded(["oha", "--help"], 5000);
  // oha ≥ 1.5 has --output-format json; older ones have -j/--json.
  const jsonFlags = help.stdout.includes("--output-format") ? ["--output-format", "json"] : ["--json"];
  return {
    name: "oha",
    version,
    async prepare(scenario, dir) {
      if (scenario.bodyBytes > 0) await Bun.write(join(dir, `${scenario.name}.body`), new Uint8Array(scenario.bodyBytes).fill(0x78));
    },
    async run(scenario, url, durationS, dir) {
      const cmd = ["oha", "--no-tui", ...jsonFlags, "-z", `${durationS}s`, "-c", String(scenario.connections), "-t", "10s", "-m", scenario.method];
      if (scenario.bodyBytes > 0) cmd.push("-D", join(dir, `${scenario.name}.body`), "-T", "application/octet-stream");
      cmd.push(url);
      const r = await runBounded(cmd, (durationS + 30) * 1000);
      if (r.timedOut) throw new LoadError(`oha did not finish in time: ${cmd.join(" ")}`);
      let raw: unknown;
      try {
        raw = JSON.parse(r.stdout);
      } catch {
        throw new LoadError(`oha failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 500)}`);
      }
      if (!isRecord(raw) || !isRecord(raw.summary) || !isRecord(raw.latencyPercentiles)) throw new LoadError("oha output lacks summary/latencyPercentiles");
      let ok = 0;
      let other = 0;
      if (isRecord(raw.statusCodeDistribution)) {
        for (const [code, n] of Object.entries(raw.statusCodeDistribution)) {
          if (typeof n !== "number") continue;
          if (code.startsWith("2")) ok += n;
          else other += n;
        }
      }
      let errors = 0;
      if (isRecord(raw.errorDistribution)) {
        for (const [what, n] of Object.entries(raw.errorDistribution)) {
          // Requests cut off by the end of the run are not the target's fault.
          if (typeof n === "number" && !/deadline/i.test(what)) errors += n;
        }
      }
      const total = num(raw.summary.total, "summary.total");
      return {
        requestsPerSec: num(raw.summary.requestsPerSec, "summary.requestsPerSec"),
        p50: num(raw.latencyPercentiles.p50, "latencyPercentiles.p50"),
        p99: num(raw.latencyPercentiles.p99, "latencyPercentiles.p99"),
        requests: ok + other,
        non2xx: other,
        socketErrors: errors,
        durationS: total,
      };
    },
  };
}

// ---------------------------------------------------------------- ws-load

export async function runWsLoad(scenario: Scenario, url: string, durationS: number): Promise<LoadResult> {
  const cmd = [
    process.execPath, join(import.meta.dir, "..", "ws-load.ts"), "--url", url, "--connections", String(scenario.connections),
    "--duration", String(durationS), "--size", String(scenario.messageBytes ?? 128),
  ];
  const r = await runBounded(cmd, (durationS + 30) * 1000);
  if (r.timedOut) throw new LoadError("ws-load did not finish in time");
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  if (line === undefined) throw new LoadError(`ws-load failed (exit ${r.code}): ${r.stderr.trim().slice(0, 500)}`);
  const raw: unknown = JSON.parse(line);
  if (!isRecord(raw)) throw new LoadError("ws-load output is not an object");
  return {
    requestsPerSec: num(raw.requestsPerSec, "requestsPerSec"),
    p50: num(raw.p50, "p50"),
    p99: num(raw.p99, "p99"),
    requests: num(raw.messages, "messages"),
    non2xx: 0,
    socketErrors: num(raw.connectErrors, "connectErrors") + num(raw.badMessages, "badMessages") + num(raw.closedEarly, "closedEarly"),
    durationS: num(raw.durationS, "durationS"),
  };
}
