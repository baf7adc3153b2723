/**
 * Upstream connection reuse: how many upstream connections each proxy opens and uses to serve
 * 50 and 256 concurrent clients through one upstream, plain and TLS. Bun keeps at most 64 idle
 * upstream sockets per process (shared/bun-notes.md), so above 64 concurrent requests a Bun proxy
 * churns connections; nginx with `keepalive 64` does too, with `keepalive 512` it should not.
 * switchyard-w2 runs `--workers 2` (a pool per worker); switchyard-max64 caps the cluster at 64
 * exchanges in flight (`limits: { max_connections: 64, max_pending: 4096 }`: the rest wait in line).
 *
 *   bun run bench:reuse [--connections 50,256] [--upstream plain,tls] [--duration 5] [--rounds 2]
 *                       [--targets switchyard,switchyard-w2,switchyard-max64,minimal,nginx-ka64,nginx-ka512]
 *
 * The upstream is bench/counting-upstream.mjs (node:http / node:https under `node` when on PATH):
 * it counts every accepted TCP connection, so churn is counted exactly (distinct peer ports are
 * not: the kernel reuses them). The TLS certificate is made at start with openssl. Per target and
 * client count: a 1 s warm-up, then `--duration` s of GET /1k with wrk; rounds alternate the
 * targets; medians. See bench/README.md.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fmtInt, table } from "./lib/format.ts";
import { startNginxRef } from "./lib/nginx.ts";
import { freePort, killAll, runBench, runBounded, spawnLogged, tail } from "./lib/procs.ts";
import { median, rotated } from "./lib/stats.ts";
import { cleanEnv, startMinimal, startSwitchyardWith, type Target, type Upstream } from "./lib/targets.ts";
import { runWrk } from "./lib/tools.ts";

const ALL = ["switchyard", "switchyard-w2", "switchyard-max64", "minimal", "nginx-ka64", "nginx-ka512"];
const { values: flags } = parseArgs({
  options: {
    connections: { type: "string", default: "50,256" },
    upstream: { type: "string", default: "plain,tls" },
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    targets: { type: "string", default: ALL.join(",") },
  },
});
const levels = flags.connections!.split(",").map(Number);
const kinds = flags.upstream!.split(",").map((s) => s.trim()) as ("plain" | "tls")[];
const durationS = Number(flags.duration);
const rounds = Number(flags.rounds);
const wanted = flags.targets!.split(",").map((s) => s.trim());
for (const w of wanted) if (!ALL.includes(w)) throw new Error(`unknown target ${w} (${ALL.join(", ")})`);
if (wanted.some((w) => w.startsWith("nginx")) && !Bun.which("nginx")) throw new Error("nginx is not on PATH (or leave out the nginx targets)");

const tmp = mkdtempSync(join(tmpdir(), "switchyard-reuse-"));
const problems: string[] = [];

interface Stats {
  requests: number;
  connections: number;
  used: number;
  handshakes: number;
  resumed: number;
}

const trustAll = { tls: { rejectUnauthorized: false } };

async function makeCert(): Promise<{ cert: string; key: string }> {
  const cert = join(tmp, "upstream-cert.pem");
  const key = join(tmp, "upstream-key.pem");
  const r = await runBounded(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], 30_000);
  if (r.code !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert, key };
}

async function startCountingUpstream(tls?: { cert: string; key: string }): Promise<Upstream & { runtime: string }> {
  const port = freePort();
  const runtime = Bun.which("node") ?? process.execPath;
  const name = tls ? "upstream-tls" : "upstream";
  const proc = spawnLogged(name, [runtime, join(import.meta.dir, "counting-upstream.mjs"), String(port), ...(tls ? [tls.cert, tls.key] : [])], { env: cleanEnv(), logPath: join(tmp, `${name}.log`) });
  const origin = `${tls ? "https" : "http"}://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`${origin}/__stats`, { proxy: false, ...trustAll });
      await res.arrayBuffer();
      if (res.ok) return { origin, proc, runtime: runtime.endsWith("node") ? "node" : "bun" };
    } catch {
      // not yet
    }
    if (proc.proc.exitCode !== null) break;
    await Bun.sleep(50);
  }
  throw new Error(`counting upstream did not start:\n${tail(proc.logPath)}${tail(`${proc.logPath}.err`)}`);
}

async function stats(up: Upstream): Promise<Stats> {
  return (await (await fetch(`${up.origin}/__stats`, { proxy: false, ...trustAll })).json()) as Stats;
}
const reset = (up: Upstream) => fetch(`${up.origin}/__reset`, { method: "POST", proxy: false, ...trustAll }).then((r) => r.arrayBuffer());

async function startTargets(up: Upstream, kind: "plain" | "tls", cert: string): Promise<(Target & { label: string })[]> {
  const tlsYaml = kind === "tls" ? `{ ca: ${JSON.stringify(cert)} }` : undefined;
  const out: (Target & { label: string })[] = [];
  for (const w of wanted) {
    if (w === "switchyard") out.push(await startSwitchyardWith(tmp, up, { label: `switchyard-${kind}`, clusterTls: tlsYaml }));
    else if (w === "switchyard-w2") out.push(await startSwitchyardWith(tmp, up, { label: `switchyard-w2-${kind}`, clusterTls: tlsYaml, args: ["--workers", "2"] }));
    else if (w === "switchyard-max64") out.push(await startSwitchyardWith(tmp, up, { label: `switchyard-max64-${kind}`, clusterTls: tlsYaml, clusterLimits: "{ max_connections: 64, max_pending: 4096 }" }));
    else if (w === "minimal") out.push({ ...(await startMinimal(tmp, up, kind === "tls" ? cert : undefined)), label: "minimal" });
    else out.push(await startNginxRef(tmp, `${w}-${kind}`, { upstream: up.origin, keepalive: Number(w.slice("nginx-ka".length)) }));
  }
  return out;
}

function displayName(t: Target & { label: string }): string {
  return t.label.replace(/-(plain|tls)$/, "");
}

async function main(): Promise<void> {
  const { cert, key } = await makeCert();
  console.log(`upstream connection reuse — bun ${Bun.version}, wrk, ${rounds} round(s) × ${durationS} s per target and client count (after a 1 s warm-up), GET /1k; Bun's idle pool: 64 sockets per process\n`);
  for (const kind of kinds) {
    const up = await startCountingUpstream(kind === "tls" ? { cert, key } : undefined);
    const targets = await startTargets(up, kind, cert);
    console.log(`${kind === "tls" ? "TLS" : "plain"} upstream (${up.runtime} ${kind === "tls" ? "node:https" : "node:http"}, ${up.origin})`);
    for (const c of levels) {
      const per = new Map<string, { rps: number; stats: Stats; errors: number }[]>(targets.map((t) => [t.label, []]));
      for (let round = 0; round < rounds; round++) {
        for (const t of rotated(targets, round)) {
          try {
            await runWrk({ url: `${t.origin}/1k`, connections: c, durationS: 1, dir: tmp });
            await Bun.sleep(200);
            await reset(up);
            const r = await runWrk({ url: `${t.origin}/1k`, connections: c, durationS, dir: tmp });
            const s = await stats(up);
            per.get(t.label)!.push({ rps: r.requestsPerSec, stats: s, errors: r.non2xx + r.socketErrors });
            if (r.non2xx + r.socketErrors) problems.push(`${kind} c${c} round ${round + 1} ${displayName(t)}: ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
            process.stderr.write(`  ${kind} c${c} round ${round + 1} ${displayName(t)}: ${fmtInt(r.requestsPerSec)} req/s, ${fmtInt(s.connections)} upstream connections opened\n`);
          } catch (e) {
            problems.push(`${kind} c${c} round ${round + 1} ${displayName(t)}: ${(e as Error).message}`);
          }
          if (!t.healthy()) throw new Error(`${displayName(t)} died`);
          await Bun.sleep(300);
        }
      }
      const rows = targets.map((t) => {
        const ms = per.get(t.label)!;
        const med = (f: (s: Stats) => number) => fmtInt(median(ms.map((m) => f(m.stats))));
        return [
          displayName(t), fmtInt(median(ms.map((m) => m.rps))), med((s) => s.requests), med((s) => s.connections), med((s) => s.used),
          ...(kind === "tls" ? [`${med((s) => s.handshakes)} (${med((s) => s.resumed)})`] : []),
          fmtInt(median(ms.map((m) => m.stats.requests / Math.max(1, m.stats.connections)))),
          ms.map((m) => `${fmtInt(m.stats.connections)}`).join(" "),
        ];
      });
      console.log(`${kind}, ${c} clients (medians of ${rounds}):`);
      console.log(table(["target", "req/s", "upstream requests", "conns opened", "conns used", ...(kind === "tls" ? ["handshakes (resumed)"] : []), "requests/conn", "opened per round"], rows));
      console.log("");
    }
    await killAll();
  }
  console.log("conns opened: TCP connections the upstream accepted during the measured run (connections kept from the warm-up are not new); conns used: distinct connections that carried a request in it (TLS: handshakes completed, how many resumed a session).");
}

await runBench(main, problems, tmp);
