/**
 * Start-up timing for bench/footprint.ts: exec → first proxied 200 (polled tightly), exec → exit,
 * and building Switchyard as a single executable.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Proc, runBounded, spawnLogged } from "./procs.ts";

const REPO = join(import.meta.dir, "..", "..");

/** The first `lines` non-empty lines of a log file, on one line ("" when none). */
function head(path: string, lines = 2): string {
  try {
    return readFileSync(path, "utf8").split("\n").filter((l) => l.trim() !== "").slice(0, lines).map((l) => l.trim()).join(" / ");
  } catch {
    return "";
  }
}

/**
 * Spawns `cmd` and polls GET `url` every ~`pollMs` until it answers 200; the time runs from just
 * before the exec to the 200's body read. The process is left running (the caller reads its memory
 * and stops it). Throws, with the log's tail, if it exits or is not ready within `timeoutMs`.
 */
export async function timeToFirst200(name: string, cmd: string[], o: { url: string; env: Record<string, string | undefined>; cwd?: string; logPath: string; timeoutMs?: number; pollMs?: number }): Promise<{ ms: number; polls: number; proc: Proc }> {
  const t0 = performance.now();
  const proc = spawnLogged(name, cmd, { cwd: o.cwd, env: o.env, logPath: o.logPath });
  const deadline = t0 + (o.timeoutMs ?? 15_000);
  let polls = 0;
  let last = "";
  while (performance.now() < deadline) {
    polls++;
    try {
      const res = await fetch(o.url, { proxy: false, signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return { ms: performance.now() - t0, polls, proc };
      last = `status ${res.status}`;
    } catch (e) {
      last = (e as { code?: string }).code ?? String(e);
    }
    if (proc.proc.exitCode !== null || proc.proc.signalCode !== null) {
      const said = `${head(`${o.logPath}.err`)} ${head(o.logPath)}`.trim();
      throw new Error(`${name} exited before answering (code ${proc.proc.exitCode ?? proc.proc.signalCode})${said ? `; it said: ${said}` : ""}`);
    }
    await Bun.sleep(o.pollMs ?? 1);
  }
  throw new Error(`${name}: no 200 from ${o.url} after ${o.timeoutMs ?? 15_000} ms (${last})`);
}

/** exec → exit of `cmd`, with its exit code and output. */
export async function timeToExit(cmd: string[], env?: Record<string, string | undefined>, cwd?: string): Promise<{ ms: number; code: number | null; out: string }> {
  const t0 = performance.now();
  const r = await runBounded(cmd, 30_000, env, cwd);
  return { ms: performance.now() - t0, code: r.code, out: (r.stdout + r.stderr).trim() };
}

/** `bun build --compile --bytecode --format esm ENTRY --outfile OUT` in the repository; wall time and size. */
export async function buildExecutable(entry: string, outfile: string): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const r = await runBounded([process.execPath, "build", "--compile", "--bytecode", "--format", "esm", entry, "--outfile", outfile], 120_000, undefined, REPO);
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`bun build --compile ${entry} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 800)}`);
  return { ms, bytes: statSync(outfile).size };
}
