/**
 * Child processes of the bench: spawned with their output in log files, all tracked so that every
 * one is killed at the end, on error and on Ctrl-C. Also /proc helpers (children, RSS) and free
 * ports.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import type { Subprocess } from "bun";

export interface Proc {
  name: string;
  pid: number;
  proc: Subprocess;
  logPath: string;
}

const live = new Set<Proc>();
/** Extra pids (grandchildren: Switchyard's re-exec'd child, nginx workers) to make sure of at the end. */
const extraPids = new Set<number>();

export function spawnLogged(name: string, cmd: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; logPath: string }): Proc {
  const proc = Bun.spawn(cmd, {
    cwd: opts.cwd,
    env: opts.env,
    stdin: "ignore",
    stdout: Bun.file(opts.logPath),
    stderr: Bun.file(`${opts.logPath}.err`),
  });
  const p: Proc = { name, pid: proc.pid, proc, logPath: opts.logPath };
  live.add(p);
  void proc.exited.then(() => live.delete(p));
  return p;
}

export function trackPid(pid: number): void {
  extraPids.add(pid);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM every tracked process, wait up to `graceMs`, then SIGKILL what is left. */
export async function killAll(graceMs = 3000): Promise<void> {
  const procs = [...live];
  for (const p of procs) {
    try {
      p.proc.kill("SIGTERM");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (procs.some((p) => p.proc.exitCode === null && p.proc.signalCode === null) || [...extraPids].some(alive))) {
    await Bun.sleep(50);
  }
  for (const p of procs) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      try {
        p.proc.kill("SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
  for (const pid of extraPids) {
    if (alive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  }
  extraPids.clear();
}

/** Stops one spawned process: SIGTERM, up to `graceMs` for it and its descendants to go, then SIGKILL to what is left. */
export async function stopTree(p: Proc, graceMs = 3000): Promise<void> {
  const tree = descendantPids(p.pid);
  if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (p.proc.exitCode === null && p.proc.signalCode === null || tree.some(alive))) await Bun.sleep(10);
  for (const pid of [p.pid, ...tree]) {
    if (!alive(pid)) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  await p.proc.exited;
}

/** Direct children of `pid`, found by scanning /proc/<pid>/stat (field 4 is the parent pid). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // exited while scanning
    }
  }
  return out;
}

/** Every descendant of `pid` (children, their children, …), e.g. Switchyard's re-exec'd child, supervisor and workers. */
export function descendantPids(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of childPids(queue.shift()!)) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM); 0 when the process is gone. */
export function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Clock ticks per second for /proc/PID/stat (getconf CLK_TCK; 100 on Linux everywhere we run). */
const CLK_TCK = 100;

/** CPU seconds (user + system) a process has used so far; 0 when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): utime and stime are the 14th and 15th.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** Samples the summed VmRSS of `pids` every `everyMs` until stopped; returns the peak in KiB. */
export function rssSampler(pids: number[], everyMs = 100): { stop(): number } {
  let peak = 0;
  const sample = () => {
    let sum = 0;
    for (const pid of pids) sum += statusKiB(pid, "VmRSS");
    if (sum > peak) peak = sum;
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

/** A port free right now on 127.0.0.1 (bind port 0, read it, release it). */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

export function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** Runs a command to completion with a hard time limit (or until `interrupt`); its output is captured. */
export async function runBounded(cmd: string[], timeoutMs: number, env?: Record<string, string | undefined>, cwd?: string, interrupt?: AbortSignal): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean }> {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env, cwd });
  // `interrupt`: SIGINT, as Ctrl-C would (wrk then stops, reports and exits 0).
  interrupt?.addEventListener("abort", () => proc.kill("SIGINT"), { once: true });
  const p: Proc = { name: cmd[0] ?? "?", pid: proc.pid, proc, logPath: "" };
  live.add(p);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const code = await proc.exited;
  clearTimeout(timer);
  live.delete(p);
  return { code: timedOut ? null : code, stdout, stderr, timedOut };
}

/**
 * Runs a bench's `main` to the end: a throw is one more problem; every process it started is
 * killed; problems are listed (logs kept in `tmp`) with exit code 1, else `tmp` is removed.
 */
export async function runBench(main: () => Promise<void>, problems: string[], tmp: string): Promise<void> {
  try {
    await main();
  } catch (e) {
    problems.push(`fatal: ${(e as Error).stack ?? String(e)}`);
  } finally {
    await killAll();
  }
  if (problems.length) {
    console.log(`\n${problems.length} problem(s) (logs kept in ${tmp}):`);
    for (const p of problems) console.log(`  - ${p}`);
    process.exit(1);
  }
  rmSync(tmp, { recursive: true, force: true });
}
