/**
 * nginx as a reference proxy for bench/footprint.ts and bench/reuse.ts: a compact config (the
 * HTTP part of bench/nginx.conf — upstream keepalive, proxy_http_version 1.1, X-Forwarded-For)
 * with the upstream keepalive pool size and an https upstream as options. Everything lives under
 * a private prefix, so it runs as non-root.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { childPids, freePort, spawnLogged, tail, trackPid } from "./procs.ts";
import { cleanEnv, StartError, type Target } from "./targets.ts";

export interface NginxOptions {
  /** Where the proxy listens (127.0.0.1). */
  port: number;
  /** http://127.0.0.1:PORT or https://127.0.0.1:PORT */
  upstream: string;
  /** `keepalive` of the upstream block: idle upstream connections cached per worker (bench/nginx.conf: 256). */
  keepalive: number;
  workers?: number;
}

/** Writes PREFIX/nginx.conf and returns the command that runs nginx in the foreground. */
export async function nginxCommand(prefix: string, o: NginxOptions): Promise<string[]> {
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(prefix, "tmp", d), { recursive: true });
  const up = new URL(o.upstream);
  const tls = up.protocol === "https:";
  const conf = `${process.getuid?.() === 0 ? "user root;" : ""}
worker_processes ${o.workers ?? 1};
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
${["body", "proxy", "fastcgi", "uwsgi", "scgi"].map((d) => `    ${d === "body" ? "client_body" : d}_temp_path ${prefix}/tmp/${d};`).join("\n")}
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream bench_upstream {
        server ${up.host};
        keepalive ${o.keepalive};
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:${o.port} reuseport;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
${tls ? "        proxy_ssl_verify off;\n        proxy_ssl_session_reuse on;\n        proxy_ssl_server_name on;\n        proxy_ssl_name localhost;\n" : ""}        location / { proxy_pass ${up.protocol}//bench_upstream; }
    }
}
`;
  const confPath = join(prefix, "nginx.conf");
  await Bun.write(confPath, conf);
  return ["nginx", "-p", prefix, "-c", confPath, "-e", join(prefix, "error.log"), "-g", "daemon off;"];
}

/** Starts nginx (as a target named `label`) and waits until it proxies GET /1k. */
export async function startNginxRef(tmp: string, label: string, o: Omit<NginxOptions, "port">): Promise<Target & { label: string }> {
  const prefix = join(tmp, label);
  const port = freePort();
  const cmd = await nginxCommand(prefix, { ...o, port });
  const proc = spawnLogged(label, cmd, { env: cleanEnv(), logPath: join(tmp, `${label}.log`) });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.proc.exitCode !== null) throw new StartError(`${label} exited during start:\n${tail(join(prefix, "error.log"))}`);
    try {
      const res = await fetch(`${origin}/1k`, { proxy: false, signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new StartError(`${label} not ready at ${origin}/1k:\n${tail(join(prefix, "error.log"))}`);
    await Bun.sleep(50);
  }
  for (const pid of childPids(proc.pid)) trackPid(pid);
  return {
    name: "nginx",
    label,
    origin,
    describe: `nginx, upstream keepalive ${o.keepalive}`,
    serverPids: () => childPids(proc.pid),
    healthy: () => proc.proc.exitCode === null,
  };
}
