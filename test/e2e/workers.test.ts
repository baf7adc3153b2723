/** workers: N — several processes on one port (reusePort), supervised: signals forwarded, a dead worker restarted. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ProxyProcess, spawnWorkers, writeTempConfig } from "../helpers/cli.ts";
import { rawRequest } from "../helpers/raw.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { freePort, type Gate, gate, startUpstream, type Upstream } from "../helpers/upstream.ts";


let up: Upstream;
let hits = 0;
const dir = tempDir();
let proxy: ProxyProcess;
let cleanup: () => void;
let adminPort = 0;
/** The upstream holds requests here until the test has seen the herd form; open unless the herd test closes it. */
let held: Gate = gate();
held.open();

beforeAll(async () => {
  up = startUpstream(async (req) => {
    hits++;
    await held.pass();
    return new Response(`cached ${new URL(req.url).pathname}`, { headers: { "cache-control": "max-age=60" } });
  });
  adminPort = freePort();
  const started = await spawnWorkers({
    workers: 2,
    admin: { address: "127.0.0.1", port: adminPort },
    listeners: [{ address: "127.0.0.1", port: freePort() }],
    caches: { c: { path: dir.file("shared.db") } },
    // Followers wait for the leader as long as it may take on a loaded CI machine (the default 5 s
    // wait would let a slow herd go upstream a second time, correctly, but not what this tests).
    routes: [{ to: "u", cache: { name: "c", collapse: { wait: "30s" } }, timeouts: { request: "60s" } }],
    clusters: { u: { endpoints: [up.origin], limits: { max_requests: 5000, max_connections: 5000 } } },
    access_log: { enabled: false },
  });
  proxy = started;
  cleanup = started.cleanup;
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  cleanup();
  dir.cleanup();
});

const workerPids = () => new Set(proxy.events.filter((e) => e.msg === "switchyard started").map((e) => e.pid as number));

test("two workers start on the same port", () => {
  const workers = proxy.events.filter((e) => e.msg === "switchyard started").map((e) => e.worker).sort();
  expect(workers).toEqual([0, 1]);
  expect(workerPids().size).toBe(2);
});

test("herd: 1,000 concurrent requests for one cold key through the two workers → exactly one upstream request", async () => {
  // Followers in both workers (the admin port sums them), read over a socket of its own: this
  // process sends at most 256 fetches at a time (Bun), all of them taken by the herd's first wave.
  const followers = async () => {
    const { body } = await rawRequest(adminPort, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return Number(/^switchyard_collapsed_waiters_total\{kind="collapse"\} (\d+)$/m.exec(body)?.[1] ?? 0);
  };
  held = gate();
  const herd = Promise.all(Array.from({ length: 1000 }, () => fetch(`${proxy.origin}/herd`).then((r) => r.text())));
  try {
    await held.arrived(1);
    await waitFor("the herd following its leader", async () => (await followers()) >= 100, 20_000);
  } finally {
    held.open();
  }
  const results = await herd;
  expect(new Set(results)).toEqual(new Set(["cached /herd"]));
  expect(hits).toBe(1);
}, 60_000);

test("/metrics on the admin port reports the sum over the workers", async () => {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const total = [...text.matchAll(/^switchyard_requests_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  expect(total).toBe(1000);
  expect(text).toMatch(/^switchyard_config_version 1$/m); // a state, not summed
  const check = Bun.spawn(["promtool", "check", "metrics"], { stdin: new TextEncoder().encode(text), stdout: "pipe", stderr: "pipe" });
  expect(await check.exited).toBe(0);
  // The status page counts every worker's requests too, not worker 0's share.
  const status = (await (await fetch(`http://127.0.0.1:${adminPort}/status.json`)).json()) as { routes: { requests: number }[] };
  expect(status.routes.reduce((sum, r) => sum + r.requests, 0)).toBe(1000);
});

test("SIGHUP reaches every worker", async () => {
  const after = proxy.events.length;
  proxy.proc.kill("SIGHUP");
  await waitFor("two reloads", () => proxy.events.slice(after).filter((e) => e.msg === "config reloaded").length === 2, 10_000);
});

test("a worker that dies is restarted, and the port keeps serving meanwhile", async () => {
  const victim = [...workerPids()][0]!;
  const after = proxy.events.length;
  process.kill(victim, "SIGKILL");
  // Once the victim is gone (connections queued on its socket at that instant are reset by the
  // kernel, as with any reuseport group), new connections are served by the survivor.
  await waitFor("victim gone", () => {
    try {
      process.kill(victim, 0);
      return false;
    } catch {
      return true;
    }
  }, 5_000);
  for (let i = 0; i < 20; i++) expect((await fetch(`${proxy.origin}/herd`, { keepalive: false })).status).toBe(200);
  await proxy.waitForEvent("worker exited; restarting", after);
  await waitFor("restarted", () => proxy.events.slice(after).some((e) => e.msg === "switchyard started"), 10_000);
}, 20_000);

test("summed counters never go down when a worker dies and is restarted (its last counts are kept)", async () => {
  const requestsTotal = async () => {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    return [...text.matchAll(/^switchyard_requests_total\{[^}]*\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  };
  // Worker 1 (not 0: it serves the admin listener) must have counted something of its own.
  const started = proxy.events.filter((e) => e.msg === "switchyard started");
  const victim = started.findLast((e) => e.worker === 1)!.pid as number;
  for (let i = 0; i < 60; i++) expect((await fetch(`${proxy.origin}/herd`, { keepalive: false })).status).toBe(200);
  const before = await requestsTotal();
  const after = proxy.events.length;
  process.kill(victim, "SIGKILL");
  await proxy.waitForEvent("worker exited; restarting", after);
  expect(await requestsTotal()).toBeGreaterThanOrEqual(before); // between death and restart
  await waitFor("restarted", () => proxy.events.slice(after).some((e) => e.msg === "switchyard started" && e.worker === 1), 10_000);
  expect(await requestsTotal()).toBeGreaterThanOrEqual(before); // after restart: the new worker starts at 0
}, 20_000);

test("SIGTERM drains every worker and the supervisor exits 0", async () => {
  expect(await proxy.stop()).toBe(0);
});

test("--workers N on the command line overrides the config's workers", async () => {
  const config = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port: freePort() }],
    routes: [{ to: "u" }],
    clusters: { u: { endpoints: [up.origin] } },
    access_log: { enabled: false },
  });
  const { CLI, ROOT } = await import("../helpers/cli.ts");
  const proc = Bun.spawn([process.execPath, CLI, "start", config.file, "--workers", "3"], {
    cwd: ROOT, env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" }, stdout: "ignore", stderr: "pipe",
  });
  let text = "";
  const reader = proc.stderr.getReader();
  try {
    await waitFor("three workers", async () => {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
      return (text.match(/"msg":"switchyard started"/g) ?? []).length === 3;
    }, 10_000);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    config.cleanup();
  }
  const bad = Bun.spawnSync([process.execPath, CLI, "start", "switchyard.yaml", "--workers", "zero"], { cwd: ROOT, env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" } });
  expect(bad.exitCode).toBe(2);
  expect(bad.stderr.toString()).toContain("--workers takes a number");
}, 20_000);
