/** Runs Switchyard as a user does — `bun src/cli.ts …` in its own process — for reload, shutdown and memory tests. */
import type { Subprocess } from "bun";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ConfigInput } from "../../src/config/schema.ts";
import { tempDir, waitFor } from "./tmp.ts";

export const ROOT = join(import.meta.dir, "../..");
export const CLI = join(ROOT, "src/cli.ts");

export interface ProxyProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  origin: string;
  port: number;
  adminOrigin?: string;
  configFile: string;
  /** JSON lines the process wrote on stderr (its event log) so far. */
  events: Record<string, unknown>[];
  /** Lines written on stdout (the access log by default). */
  stdout: string[];
  waitForEvent(msg: string, after?: number): Promise<Record<string, unknown>>;
  /** Resident set size of the proxy process, from /proc (bytes). */
  rss(): number;
  stop(): Promise<number>;
}

async function collectLines(stream: ReadableStream<Uint8Array>, into: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) !== -1) {
      into(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  }
  if (pending) into(pending);
}

export function writeTempConfig(config: ConfigInput | string, name = "switchyard.json"): { file: string; cleanup(): void } {
  const dir = tempDir();
  const file = dir.file(name);
  writeFileSync(file, typeof config === "string" ? config : JSON.stringify(config, null, 2));
  return { file, cleanup: dir.cleanup };
}

/**
 * Starts the CLI on `configFile`; the fetch cap is set in the environment so no re-exec happens and
 * `proc.pid` is the proxy. `cwd`: the working directory it starts in (default the repository).
 */
export async function spawnProxy(configFile: string, env: Record<string, string> = {}, cwd = ROOT): Promise<ProxyProcess> {
  const proc = Bun.spawn([process.execPath, CLI, "start", configFile], {
    cwd,
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const events: Record<string, unknown>[] = [];
  const stdout: string[] = [];
  void collectLines(proc.stderr, (line) => {
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      events.push({ msg: "raw", line });
    }
  });
  void collectLines(proc.stdout, (line) => stdout.push(line));
  const waitForEvent = (msg: string, after = 0) =>
    waitFor(`event "${msg}" (got: ${events.map((e) => e.msg).join(", ")})`, () => events.slice(after).find((e) => e.msg === msg), 10_000);
  const started = await waitForEvent("switchyard started");
  const listener = (started.listeners as string[])[0]!;
  const port = Number(new URL(listener).port);
  return {
    proc,
    origin: `http://127.0.0.1:${port}`,
    port,
    adminOrigin: (started.admin as string | null)?.replace(/\/$/, ""),
    configFile,
    events,
    stdout,
    waitForEvent,
    rss() {
      const status = readFileSync(`/proc/${proc.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    },
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Starts the CLI on `config` (with `workers: N`) and waits until all N workers have started; `cleanup()` removes the config file. */
export async function spawnWorkers(config: ConfigInput & { workers: number }): Promise<ProxyProcess & { cleanup(): void }> {
  const file = writeTempConfig(config);
  const proxy = await spawnProxy(file.file);
  await waitFor(`${config.workers} workers`, () => proxy.events.filter((e) => e.msg === "switchyard started").length === config.workers, 10_000);
  return Object.assign(proxy, { cleanup: file.cleanup });
}
