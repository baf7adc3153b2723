/** The status page's rollouts and SLOs block, rendered by a real headless Chromium (as test/observe/status-page.test.ts). */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "status-page-token-0123456789";
let stable: Upstream;
let canary: Upstream;
let proxy: TestProxy;
const profile = tempDir("switchyard-chromium-");

beforeAll(async () => {
  stable = startUpstream(() => new Response("stable"));
  let n = 0;
  canary = startUpstream(() => new Response("canary", { status: ++n % 4 === 0 ? 503 : 200 }));
  proxy = await startProxy({
    admin: { address: "127.0.0.1", port: 0, token: TOKEN },
    routes: [{
      name: "orders",
      rollout: { stable: "v1", canary: "v2", steps: ["50%", "100%"], step_duration: "60s", min_requests: 10, analysis: { error_rate: { max: "5%" } }, sticky: false },
      slo: { availability: "99%", latency: { threshold: "100ms", target: "95%" }, window: "7d" },
    }],
    clusters: { v1: { endpoints: [stable.origin] }, v2: { endpoints: [canary.origin] } },
  });
  for (let i = 0; i < 4; i++) await Promise.all(Array.from({ length: 20 }, () => fetch(`${proxy.origin}/o`).then((r) => r.text())));
  await waitFor("the rollback", async () => {
    const res = await fetch(`${proxy.running.admin!.url.origin}/rollouts`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await res.json()) as { rollouts: { state: string }[] }).rollouts[0]!.state === "rolled_back";
  });
});
afterAll(async () => {
  await proxy.stop();
  stable.stop(true);
  canary.stop(true);
  profile.cleanup();
});

async function render(url: string): Promise<string> {
  const chrome = Bun.spawn(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", `--user-data-dir=${profile.file(`p${Date.now()}`)}`, "--virtual-time-budget=3000", "--dump-dom", url],
    { stdout: "pipe", stderr: "pipe" },
  );
  const timer = setTimeout(() => chrome.kill(), 30_000);
  const dom = await new Response(chrome.stdout).text();
  clearTimeout(timer);
  expect(await chrome.exited).toBe(0);
  return dom;
}

test("the page shows each rollout's state, step, weight, both sides' error rate and p99, the history, and each SLO's budget and burn rates", async () => {
  const dom = await render(`${proxy.running.admin!.url.origin}/status?token=${TOKEN}`);
  expect(dom).toContain('<section id="rollouts-block">');
  expect(dom).toMatch(/<tr data-route="orders"><td>orders<\/td><td class="rolled_back">rolled_back<\/td><td>1 of 2<\/td><td>0%<\/td><td>\d+\.\d\d% of \d+ \/ [\d.]+ ms<\/td><td>0\.00% of \d+ \/ [\d.]+ ms<\/td><td>canary error rate [\d.]+% &gt; 5%<\/td><\/tr>/);
  expect(dom).toMatch(/<td>orders<\/td><td>[^<]+<\/td><td>rolled_back<\/td><td>1<\/td><td>0%<\/td><td>canary error rate/);
  expect(dom).toMatch(/<tr data-route="orders"><td>orders<\/td><td>availability<\/td><td>99\.00% \/ 168h<\/td><td>-?[\d.]+%<\/td>(<td>[\d.]+×<\/td>){4}<\/tr>/);
  expect(dom).toMatch(/<td>latency<\/td><td>95\.00% \/ 168h<\/td>/);
}, 60_000);

test("the rollouts and SLOs API is behind the admin token like the rest", async () => {
  const origin = proxy.running.admin!.url.origin;
  for (const [method, path] of [["GET", "/rollouts"], ["GET", "/slos"], ["POST", "/rollouts/orders/promote"]] as const) {
    expect((await fetch(`${origin}${path}`, { method })).status).toBe(401);
  }
  const rollout = (await (await fetch(`${origin}/rollouts`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { rollouts: { state: string }[] };
  expect(rollout.rollouts[0]!.state).toBe("rolled_back");
});
