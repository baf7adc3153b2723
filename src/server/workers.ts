/**
 * Worker processes: `workers: N` runs N copies of the proxy on the same ports (reusePort, so the
 * kernel spreads connections), each with its own fetch pool — the way past Bun's 64 idle upstream
 * sockets per process (shared/bun-notes.md). This supervisor forwards signals (SIGHUP reloads,
 * SIGTERM/SIGINT drain), relays pushed configs between workers (config-sync.ts) and restarts a
 * worker that dies, with a growing delay, and relays rollout counts and decisions between worker 0
 * and the others (rollout/sync.ts). It also keeps the machine's local rate-limit buckets, so
 * limits hold across workers (filters/rate-limit/shared-buckets.ts).
 */
import type { Subprocess } from "bun";
import { type RateLimitMessage, superviseRateLimits, WORKER_COUNT_ENV } from "../filters/rate-limit/shared-buckets.ts";
import { metrics } from "../observe/metrics.ts";
import { type MetricsMessage, superviseMetrics } from "../observe/worker-metrics.ts";
import { type RolloutMessage, superviseRollouts } from "../rollout/sync.ts";
import { type ConfigSyncMessage, superviseConfig } from "./config-sync.ts";

export const WORKER_ENV = "SWITCHYARD_WORKER";

function log(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

/** `command`: how to run the CLI again (cli.ts selfCommand: from source, or a compiled executable). */
export async function superviseWorkers(command: readonly string[], configFile: string, count: number): Promise<number> {
  const children = new Map<number, Subprocess>();
  const failures = new Map<number, number>();
  let stopping = false;

  const metricsPeers = superviseMetrics(() => [...children].map(([index, c]) => ({ index, send: (m: MetricsMessage) => c.send(m) })));
  const onConfig = superviseConfig(() => [...children].map(([index, c]) => ({ index, send: (m: ConfigSyncMessage) => c.send(m) })));
  // Rollouts: worker 0 decides for the machine from every worker's counts (rollout/sync.ts).
  const onRollout = superviseRollouts(() => [...children].map(([index, c]) => ({ index, send: (m: RolloutMessage) => c.send(m) })));
  const onRateLimit = superviseRateLimits((limit) => metrics.rateLimitEvictions.inc([limit]));
  const spawn = (index: number) => {
    const child = Bun.spawn([...command, "start", configFile], {
      env: { ...process.env, [WORKER_ENV]: String(index), [WORKER_COUNT_ENV]: String(count) },
      stdio: ["inherit", "inherit", "inherit"],
      // JSON, not the default structured clone: a batch of rate-limit takes serialised 4–5× faster (measured).
      serialization: "json",
      ipc(message, from) {
        if (onConfig(message, { index, send: (m) => from.send(m) })) return;
        if (onRollout(message, { index, send: (m) => from.send(m) })) return;
        const type = (message as { type?: string } | null)?.type ?? "";
        if (type.startsWith("rate-limit-")) onRateLimit(message as RateLimitMessage, (m) => from.send(m));
        else metricsPeers.onMessage(message as MetricsMessage, { index, send: (m) => from.send(m) });
      },
    });
    children.set(index, child);
    void child.exited.then((code) => {
      children.delete(index);
      metricsPeers.workerExited(index);
      if (stopping) return;
      const n = (failures.get(index) ?? 0) + 1;
      failures.set(index, n);
      const delay = Math.min(30_000, 500 * 2 ** (n - 1));
      log({ level: "error", msg: "worker exited; restarting", worker: index, code, restart_in_ms: delay });
      setTimeout(() => {
        if (!stopping) spawn(index);
      }, delay);
    });
  };

  for (let i = 0; i < count; i++) spawn(i);
  log({ msg: "supervising workers", workers: count });
  process.on("SIGHUP", () => {
    for (const c of children.values()) c.kill("SIGHUP");
  });
  return await new Promise<number>((resolve) => {
    const stop = (signal: "SIGTERM" | "SIGINT") => {
      stopping = true;
      for (const c of children.values()) c.kill(signal);
      void Promise.all([...children.values()].map((c) => c.exited)).then(() => resolve(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
