/**
 * The status page with `workers: 2`: worker 0 serves it, yet it shows the machine — traffic, tries
 * and last failures summed (or the latest) over both workers, as /metrics does.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { StatusJson } from "../../src/runtime/status-data.ts";
import { openPage } from "../helpers/chromium.ts";
import { type ProxyProcess, spawnWorkers } from "../helpers/cli.ts";
import { freePort, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: ProxyProcess & { cleanup(): void };
let admin = "";
const deadPort = freePort();
const N = 200;

beforeAll(async () => {
  up = startUpstream(() => new Response("ok"));
  const adminPort = freePort();
  proxy = await spawnWorkers({
    workers: 2,
    admin: { address: "127.0.0.1", port: adminPort },
    listeners: [{ address: "127.0.0.1", port: freePort() }],
    routes: [
      { name: "ok", match: { path: { prefix: "/ok" } }, to: "up" },
      { name: "down", match: { path: { prefix: "/down" } }, to: "dead" },
    ],
    clusters: { up: { endpoints: [up.origin] }, dead: { endpoints: [`http://127.0.0.1:${deadPort}`] } },
    access_log: { enabled: false },
  });
  admin = `http://127.0.0.1:${adminPort}`;
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  proxy.cleanup();
});

/** N requests at once: many connections, which the kernel spreads over both workers (reusePort). */
async function burst(path: string): Promise<number[]> {
  return Promise.all(Array.from({ length: N }, async (_, i) => {
    const res = await fetch(`${proxy.origin}${path}/${i}`);
    await res.arrayBuffer();
    return res.status;
  }));
}

test("the JSON and the page show the totals of both workers", async () => {
  expect(new Set(await burst("/ok"))).toEqual(new Set([200]));
  expect(new Set(await burst("/down"))).toEqual(new Set([502]));
  const s = (await (await fetch(`${admin}/status.json`)).json()) as StatusJson;
  expect(s.workers).toBe(2);
  const ok = s.routes.find((r) => r.name === "ok")!;
  expect(ok).toMatchObject({ state: "ok", requests: N });
  expect(ok.traffic).toMatchObject({ requests: N, error_rate: 0 });
  const down = s.routes.find((r) => r.name === "down")!;
  expect(down).toMatchObject({ state: "failing", requests: N });
  expect(down.traffic).toMatchObject({ requests: N, error_rate: 1, top_error: { code: "upstream_connect_refused", count: N } });
  // Tries counted by each worker, summed; the last failure from whichever worker saw it last.
  const endpoint = s.clusters.find((c) => c.name === "dead")!.endpoints[0]!;
  expect(endpoint).toMatchObject({ state: "failing", tries: { total: N, error: N, error_rate: 1 } });
  expect(endpoint.last_failure).toMatchObject({ code: "upstream_connect_refused", message: "the upstream refused the connection" });
  expect(s.clusters.find((c) => c.name === "up")!.endpoints[0]).toMatchObject({ state: "ok", tries: { total: N, ok: N } });

  const page = await openPage(`${admin}/status`);
  try {
    await page.waitFor("document.documentElement.dataset.state === 'failing'", "the page drawn");
    const cells = await page.evaluate<string[]>(`[...document.querySelectorAll('tr[data-route="down"] td')].map((td) => td.textContent)`);
    expect(cells.at(-1)).toBe(String(N)); // total requests, both workers'
    expect(await page.evaluate<string>(`document.querySelector('tr[data-endpoint="127.0.0.1:${deadPort}"]').dataset.state`)).toBe("failing");
    expect(await page.evaluate<string>("document.getElementById('meta').textContent")).toContain("2 workers (totals over all)");
  } finally {
    await page.close();
  }
}, 60_000);
