/**
 * The things under load. Each is started once per bench run, on free ports, and stays up for all
 * scenarios; `serverPids()` names the processes whose memory is the target's (the serving
 * process, not a launcher or supervisor).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { alive, childPids, descendantPids, freePort, type Proc, spawnLogged, tail, trackPid } from "./procs.ts";

export type TargetName = "direct" | "minimal" | "floor" | "switchyard" | "switchyard-log" | "nginx";
export const ALL_TARGETS: readonly TargetName[] = ["direct", "minimal", "floor", "switchyard", "switchyard-log", "nginx"];

export interface Target {
  name: TargetName;
  /** http://127.0.0.1:PORT */
  origin: string;
  describe: string;
  /** Processes whose summed RSS is reported; empty for `direct` (nothing between tool and upstream). */
  serverPids(): number[];
  /** Still running? (checked after every measurement) */
  healthy(): boolean;
  /** Serves HTTP scenarios only (skipped for WebSocket ones). */
  httpOnly?: boolean;
}

export class StartError extends Error {}

const BENCH_DIR = join(import.meta.dir, "..");
const REPO = join(BENCH_DIR, "..");

/** Env for children: the runner's own, minus what would change a target's behaviour. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.BUN_CONFIG_MAX_HTTP_REQUESTS;
  for (const k of ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) delete env[k];
  return { ...env, ...extra };
}

/** Polls GET origin+path until it answers 200 with `bytes` bytes; fails early if the process died. */
async function waitReady(name: string, origin: string, proc: Proc, timeoutMs = 15_000, path = "/1k", bytes = 1024): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (proc.proc.exitCode !== null || proc.proc.signalCode !== null) {
      throw new StartError(`${name} exited during start (code ${proc.proc.exitCode ?? proc.proc.signalCode}):\n${tail(proc.logPath)}\n${tail(`${proc.logPath}.err`)}`);
    }
    try {
      const res = await fetch(origin + path, { signal: AbortSignal.timeout(1000), proxy: false });
      const body = await res.arrayBuffer();
      if (res.status === 200 && body.byteLength === bytes) return;
      last = `status ${res.status}, ${body.byteLength} bytes`;
    } catch (e) {
      last = String(e);
    }
    await Bun.sleep(100);
  }
  throw new StartError(`${name} not ready at ${origin}${path} after ${timeoutMs} ms (${last}):\n${tail(proc.logPath)}\n${tail(`${proc.logPath}.err`)}`);
}

function procAlive(p: Proc): boolean {
  return p.proc.exitCode === null && p.proc.signalCode === null;
}

export interface Upstream {
  origin: string;
  proc: Proc;
}

export async function startUpstream(tmp: string): Promise<Upstream> {
  const port = freePort();
  const proc = spawnLogged("upstream", [process.execPath, join(BENCH_DIR, "upstream.ts"), String(port)], { env: cleanEnv(), logPath: join(tmp, "upstream.log") });
  const origin = `http://127.0.0.1:${port}`;
  await waitReady("upstream", origin, proc);
  return { origin, proc };
}

export function directTarget(up: Upstream): Target {
  return {
    name: "direct",
    origin: up.origin,
    describe: "load tool → upstream (the ceiling)",
    serverPids: () => [],
    healthy: () => procAlive(up.proc),
  };
}

/** A one-file Bun proxy of bench/ (minimal-proxy.ts, floor-proxy.ts), with the fetch cap raised as Switchyard raises it. */
async function startBenchProxy(tmp: string, up: Upstream, name: "minimal" | "floor", file: string, describe: string, env: Record<string, string> = {}, logName: string = name): Promise<Target> {
  const port = freePort();
  const proc = spawnLogged(name, [process.execPath, join(BENCH_DIR, file), String(port), up.origin], {
    env: cleanEnv({ BUN_CONFIG_MAX_HTTP_REQUESTS: "65535", ...env }),
    logPath: join(tmp, `${logName}.log`),
  });
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(`${name} proxy`, origin, proc);
  return { name, origin, describe, serverPids: () => [proc.pid], healthy: () => procAlive(proc), httpOnly: name === "floor" };
}

/** `upstreamCa`: a PEM file trusted for an https upstream (bench/reuse.ts). */
export function startMinimal(tmp: string, up: Upstream, upstreamCa?: string): Promise<Target> {
  const describe = "bench/minimal-proxy.ts: Bun.serve → fetch → return (the least a Bun proxy does)";
  return upstreamCa === undefined
    ? startBenchProxy(tmp, up, "minimal", "minimal-proxy.ts", describe)
    : startBenchProxy(tmp, up, "minimal", "minimal-proxy.ts", describe, { UPSTREAM_CA: upstreamCa }, "minimal-tls");
}

export function startFloor(tmp: string, up: Upstream): Promise<Target> {
  return startBenchProxy(tmp, up, "floor", "floor-proxy.ts", "bench/floor-proxy.ts: the minimal proxy plus the per-request work issue 2 requires, in one function (HTTP only)");
}

/**
 * `clusterTls`: YAML for the cluster's `tls:` block (an https upstream), e.g. `{ ca: /tmp/x/cert.pem }`;
 * `clusterLimits`: YAML for its `limits:` block, e.g. `{ max_connections: 64 }`.
 */
function switchyardConfig(port: number, adminPort: number, upstream: string, accessLog: string | undefined, clusterTls?: string, clusterLimits?: string): string {
  return `# generated by bench/run.ts
listeners:
  - name: bench
    address: 127.0.0.1
    port: ${port}
    max_request_body: 64MiB
    idle_timeout: 30s
admin:
  address: 127.0.0.1
  port: ${adminPort}
routes:
  - name: all
    match:
      path: { prefix: / }
    to: upstream
    websocket: true
clusters:
  upstream:
    endpoints: ["${upstream}"]${clusterTls ? `\n    tls: ${clusterTls}` : ""}${clusterLimits ? `\n    limits: ${clusterLimits}` : ""}
access_log:
  enabled: ${accessLog !== undefined}
  path: ${JSON.stringify(accessLog ?? "stdout")}
shutdown:
  drain_timeout: 1s
`;
}

/** `bun src/cli.ts start CONFIG`, as users run it; it re-execs itself, and the child is measured. */
export function startSwitchyard(tmp: string, up: Upstream, withAccessLog: boolean): Promise<Target> {
  return startSwitchyardWith(tmp, up, { name: withAccessLog ? "switchyard-log" : "switchyard", accessLog: withAccessLog });
}

/**
 * Switchyard with the bench config, as `startSwitchyard`, and options for the other bench scripts:
 * `args` after the config (e.g. `--workers 2`), `clusterTls` (an https upstream), `clusterLimits`, `label` (shown
 * instead of the target name). serverPids() is every process under the launcher: the re-exec'd
 * child, and with workers the supervisor and its workers (read afresh at each call).
 */
export async function startSwitchyardWith(tmp: string, up: Upstream, o: { name?: TargetName; label?: string; accessLog?: boolean; args?: string[]; clusterTls?: string; clusterLimits?: string }): Promise<Target & { label: string }> {
  const name: TargetName = o.name ?? "switchyard";
  const label = o.label ?? name;
  const port = freePort();
  const adminPort = freePort();
  const file = label.replace(/[^a-z0-9-]/gi, "_");
  const configPath = join(tmp, `${file}.yaml`);
  await Bun.write(configPath, switchyardConfig(port, adminPort, up.origin, o.accessLog ? join(tmp, `${file}-access.log`) : undefined, o.clusterTls, o.clusterLimits));
  const proc = spawnLogged(label, [process.execPath, join(REPO, "src", "cli.ts"), "start", configPath, ...(o.args ?? [])], { cwd: REPO, env: cleanEnv(), logPath: join(tmp, `${file}.log`) });
  const origin = `http://127.0.0.1:${port}`;
  await waitReady(label, origin, proc);
  // The launcher re-execs itself with BUN_CONFIG_MAX_HTTP_REQUESTS; the child serves (or supervises workers).
  const workersWanted = o.args?.includes("--workers") ? Number(o.args[o.args.indexOf("--workers") + 1]) : 1;
  const deadline = Date.now() + 10_000;
  while (workersWanted > 1 && descendantPids(proc.pid).length < workersWanted + 1 && Date.now() < deadline) await Bun.sleep(50);
  let tree = descendantPids(proc.pid);
  for (const pid of tree) trackPid(pid);
  return {
    name,
    label,
    origin,
    describe: o.accessLog ? "Switchyard, default pipeline, access log to a file" : `Switchyard (bun src/cli.ts start${o.args?.length ? ` … ${o.args.join(" ")}` : ""}), default pipeline, no access log`,
    serverPids: () => {
      const now = descendantPids(proc.pid);
      for (const pid of now) if (!tree.includes(pid)) trackPid(pid);
      tree = now;
      return now.length ? now : [proc.pid];
    },
    healthy: () => procAlive(proc) && tree.some(alive),
  };
}

export async function startNginx(tmp: string, up: Upstream, workers: number): Promise<Target> {
  const prefix = join(tmp, "nginx");
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(prefix, "tmp", d), { recursive: true });
  const port = freePort();
  const template = await Bun.file(join(BENCH_DIR, "nginx.conf")).text();
  const upstreamPort = new URL(up.origin).port;
  const isRoot = process.getuid?.() === 0;
  const conf = template
    .replaceAll("__USER__", isRoot ? "user root;" : "")
    .replaceAll("__WORKERS__", String(workers))
    .replaceAll("__PREFIX__", prefix)
    .replaceAll("__LISTEN_PORT__", String(port))
    .replaceAll("__UPSTREAM_PORT__", upstreamPort);
  const confPath = join(prefix, "nginx.conf");
  await Bun.write(confPath, conf);
  const proc = spawnLogged("nginx", ["nginx", "-p", prefix, "-c", confPath, "-e", join(prefix, "error.log"), "-g", "daemon off;"], {
    env: cleanEnv(),
    logPath: join(tmp, "nginx.log"),
  });
  const origin = `http://127.0.0.1:${port}`;
  try {
    await waitReady("nginx", origin, proc);
  } catch (e) {
    throw new StartError(`${(e as Error).message}\n${tail(join(prefix, "error.log"))}`);
  }
  const workerPids = childPids(proc.pid);
  for (const pid of workerPids) trackPid(pid);
  return {
    name: "nginx",
    origin,
    describe: `nginx ${workers} worker(s), upstream keepalive, proxy_http_version 1.1 (RSS: workers)`,
    serverPids: () => childPids(proc.pid),
    healthy: () => procAlive(proc),
  };
}
