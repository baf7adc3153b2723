/** Reload (SIGHUP, file change, bad config refused, in-flight requests keep their config) and graceful shutdown, on the real CLI process. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { ConfigInput } from "../../src/config/schema.ts";
import { type ProxyProcess, spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let upstream: Upstream;
const gates = new Map<string, () => void>();

beforeAll(() => {
  upstream = startUpstream(async (req) => {
    const url = new URL(req.url);
    const gate = url.searchParams.get("gate");
    if (gate) await new Promise<void>((resolve) => gates.set(gate, resolve));
    return new Response(`hello from ${url.pathname}`);
  });
});
afterAll(() => upstream.stop(true));

function config(tag: string, extra: Partial<ConfigInput> = {}): ConfigInput {
  return {
    listeners: [{ address: "127.0.0.1", port: 0 }],
    admin: { address: "127.0.0.1", port: 0 },
    routes: [{ name: `route-${tag}`, match: { path: { prefix: "/" } }, to: "up", headers: { response: { set: { "x-config": tag } } } }],
    clusters: { up: { endpoints: [upstream.origin] } },
    access_log: { enabled: false },
    ...extra,
  };
}

/** Resolves once request `name` has reached the upstream, with the function that lets it answer. */
function waitForGate(name: string): Promise<() => void> {
  return waitFor(`request ${name} at the upstream`, () => gates.get(name), 2000);
}

describe("reload", () => {
  let proxy: ProxyProcess;
  let file: { file: string; cleanup(): void };
  beforeAll(async () => {
    file = writeTempConfig(config("A"));
    proxy = await spawnProxy(file.file);
  });
  afterAll(async () => {
    await proxy.stop();
    file.cleanup();
  });

  test("a changed file is picked up; a request in flight finishes on the config it started with", async () => {
    const inflight = fetch(`${proxy.origin}/slow?gate=g1`);
    const release = await waitForGate("g1");
    const after = proxy.events.length;
    writeFileSync(file.file, JSON.stringify(config("B")));
    const reloaded = await proxy.waitForEvent("config reloaded", after);
    expect(reloaded.version).toBe(2);
    const fresh = await fetch(`${proxy.origin}/x`);
    expect(fresh.headers.get("x-config")).toBe("B");
    release();
    const old = await inflight;
    expect(old.headers.get("x-config")).toBe("A");
    expect(await old.text()).toBe("hello from /slow");
  });

  test("a bad config is refused with a log line naming the problem, and the old one stays", async () => {
    const after = proxy.events.length;
    writeFileSync(file.file, JSON.stringify({ ...config("C"), routes: [{ to: "nowhere" }] }));
    const rejected = await proxy.waitForEvent("config rejected; the previous config stays in force", after);
    expect(JSON.stringify(rejected.problems)).toContain('routes[0].to: unknown cluster \\"nowhere\\"');
    const res = await fetch(`${proxy.origin}/x`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-config")).toBe("B");
    // Garbage that is not even YAML is refused the same way.
    const after2 = proxy.events.length;
    writeFileSync(file.file, "listeners: [ {{{");
    await proxy.waitForEvent("config rejected; the previous config stays in force", after2);
    expect((await fetch(`${proxy.origin}/x`)).headers.get("x-config")).toBe("B");
  });

  test("SIGHUP reloads (the file unchanged: the signal alone triggers it)", async () => {
    const before = proxy.events.length;
    writeFileSync(file.file, JSON.stringify(config("D")));
    const byWatch = await proxy.waitForEvent("config reloaded", before);
    // Later events of that write find the file unchanged ("not reloaded"): the next "config reloaded" is the signal's.
    const after = proxy.events.length;
    proxy.proc.kill("SIGHUP");
    const bySignal = await proxy.waitForEvent("config reloaded", after);
    expect(bySignal.version).toBe((byWatch.version as number) + 1);
    expect((await fetch(`${proxy.origin}/x`)).headers.get("x-config")).toBe("D");
  });
});

describe("graceful shutdown", () => {
  test("SIGTERM: readiness turns 503, new connections are refused, in-flight requests finish, exit 0", async () => {
    const file = writeTempConfig(config("S", { shutdown: { drain_timeout: "10s" } }));
    const proxy = await spawnProxy(file.file);
    try {
      expect((await fetch(`${proxy.adminOrigin}/readyz`)).status).toBe(200);
      const inflight = fetch(`${proxy.origin}/long?gate=s1`);
      const release = await waitForGate("s1");
      proxy.proc.kill("SIGTERM");
      await proxy.waitForEvent("draining");
      expect((await fetch(`${proxy.adminOrigin}/readyz`)).status).toBe(503);
      const refused = await fetch(`${proxy.origin}/new`).then((r) => r.status, (e: Error) => e.message);
      expect(refused === 503 || /ECONNREFUSED|Unable to connect|closed/i.test(String(refused))).toBe(true);
      release();
      const res = await inflight;
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("hello from /long");
      expect(await proxy.proc.exited).toBe(0);
    } finally {
      proxy.proc.kill("SIGKILL");
      file.cleanup();
    }
  }, 20_000);

  test("a request longer than the drain deadline is cut at the deadline, and the process exits", async () => {
    const file = writeTempConfig(config("T", { shutdown: { drain_timeout: "500ms" } }));
    const proxy = await spawnProxy(file.file);
    try {
      const inflight = fetch(`${proxy.origin}/forever?gate=t1`).then((r) => r.text()).catch((e: Error) => e);
      await waitForGate("t1");
      const started = performance.now();
      proxy.proc.kill("SIGTERM");
      expect(await proxy.proc.exited).toBe(0);
      expect(performance.now() - started).toBeLessThan(5000);
      expect(await inflight).toBeInstanceOf(Error);
    } finally {
      gates.get("t1")?.();
      proxy.proc.kill("SIGKILL");
      file.cleanup();
    }
  }, 20_000);
});
