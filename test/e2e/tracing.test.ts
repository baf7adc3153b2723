/** Tracing in a real process: SIGTERM sends the spans still queued, and a stuck collector cannot hold the exit. */
import { afterAll, expect, test } from "bun:test";
import { startCollector } from "../helpers/collector.ts";
import { spawnProxy, writeTempConfig } from "../helpers/cli.ts";
import { startUpstream } from "../helpers/upstream.ts";

const up = startUpstream(() => new Response("ok"));
afterAll(() => up.stop(true));

function config(endpoint: string, exportTimeout: string) {
  return {
    listeners: [{ address: "127.0.0.1", port: 0, trusted_proxies: ["127.0.0.1"] }], // requests are named by X-Request-Id
    access_log: { enabled: false },
    shutdown: { drain_timeout: "2s" },
    routes: [{ name: "main", to: "up" }],
    clusters: { up: { endpoints: [up.origin] } },
    telemetry: { tracing: { endpoint, flush_interval: "1h", export_timeout: exportTimeout } },
  };
}

test("SIGTERM: the queued spans reach the collector before the process exits", async () => {
  const collector = startCollector();
  const file = writeTempConfig(config(collector.url, "5s"));
  const proxy = await spawnProxy(file.file);
  try {
    for (let i = 0; i < 3; i++) expect((await fetch(`${proxy.origin}/x`, { headers: { "x-request-id": `e2e-${i}` } })).status).toBe(200);
    await Bun.sleep(100); // a negative check
    expect(collector.spans).toEqual([]); // a 1h interval: nothing sent yet
    expect(await proxy.stop()).toBe(0);
    expect(collector.spans.filter((s) => s.kind === "server").map((s) => s.attributes["switchyard.request_id"]).sort()).toEqual(["e2e-0", "e2e-1", "e2e-2"]);
    expect(collector.spans.filter((s) => s.kind === "client")).toHaveLength(3);
  } finally {
    proxy.proc.kill("SIGKILL");
    collector.stop();
    file.cleanup();
  }
}, 20_000);

test("a collector that never answers holds the exit no longer than export_timeout", async () => {
  const collector = startCollector(() => new Promise<Response>(() => {}));
  const file = writeTempConfig(config(collector.url, "500ms"));
  const proxy = await spawnProxy(file.file);
  try {
    expect((await fetch(`${proxy.origin}/x`)).status).toBe(200);
    const started = performance.now();
    expect(await proxy.stop()).toBe(0);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(collector.state.requests).toBe(1);
  } finally {
    proxy.proc.kill("SIGKILL");
    collector.stop();
    file.cleanup();
  }
}, 20_000);
