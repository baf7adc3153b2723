/** The status page, rendered by a real headless Chromium (Debian's, installed by .ci/run). */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const TOKEN = "status-page-token-0123456789";
let up: Upstream;
let proxy: TestProxy;
const profile = tempDir("switchyard-chromium-");

beforeAll(async () => {
  up = startUpstream((req) => (new URL(req.url).pathname === "/health" ? new Response("no", { status: 500 }) : new Response("ok")));
  proxy = await startProxy({
    admin: { address: "127.0.0.1", port: 0, token: TOKEN },
    routes: [{ name: "storefront", match: { path: { prefix: "/shop" } }, to: "shop" }, { name: "payments", to: "pay" }],
    clusters: {
      shop: { endpoints: [up.origin], breaker: {} },
      pay: { endpoints: [up.origin], health_check: { path: "/health", interval: "50ms", jitter: "0", unhealthy_threshold: 1 }, panic_threshold: 0 },
    },
  });
  await waitFor("pay marked unhealthy", () => proxy.running.state.runtime.current.clusters.get("pay")!.available().length === 0);
  for (let i = 0; i < 3; i++) await (await fetch(`${proxy.origin}/shop/${i}`)).text();
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  profile.cleanup();
});

/** The DOM after the page's script has run (Chromium --dump-dom with a virtual time budget). */
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

test("the page renders the running config's routes, clusters, endpoint health and breaker state", async () => {
  const admin = proxy.running.admin!.url.origin;
  const dom = await render(`${admin}/status?token=${TOKEN}`);
  expect(dom).toContain("config v1");
  expect(dom).toMatch(/<td>storefront<\/td><td>shop<\/td><td>3<\/td>/);
  expect(dom).toContain('<tr data-cluster="shop"><td>shop</td><td class="closed">closed</td>');
  expect(dom).toMatch(/<tr data-cluster="pay">.*<td class="unhealthy">unhealthy<\/td>/);
  expect(dom).toContain('<p id="error"></p>'); // the page reached its data
}, 60_000);

test("without the token the page shows no data, only the refusal", async () => {
  const dom = await render(`${proxy.running.admin!.url.origin}/status`);
  expect(dom).not.toContain("storefront");
}, 60_000);
