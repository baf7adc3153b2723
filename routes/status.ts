/**
 * The status page (admin listener): routes, clusters, endpoint health, breaker states and live
 * request rates, refreshing itself every 2 s. One HTML document with inline script, no build step.
 * The page reads /status.json; with an admin token, open it as /status?token=… and it sends the
 * token on its own requests.
 */
import { Hono } from "hono";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";
import { metricsText } from "../src/observe/worker-metrics.ts";

/**
 * Requests per route from the /metrics exposition — summed over every worker when supervised
 * (worker 0 serves this page; its own registry holds only its share).
 */
function requestsByRoute(exposition: string): Map<string, number> {
  const totals = new Map<string, number>();
  for (const m of exposition.matchAll(/^switchyard_requests_total\{(?:[^}]*,)?route="([^"]*)"[^}]*\} (\d+(?:\.\d+)?(?:e\+?\d+)?)$/gm)) {
    totals.set(m[1]!, (totals.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return totals;
}

export async function statusSnapshot(runtime: RuntimeRef) {
  const rt = runtime.current;
  const requests = requestsByRoute(await metricsText());
  const now = performance.now();
  return {
    version: rt.version,
    time: new Date().toISOString(),
    routes: rt.routes.map((r) => ({
      name: r.name,
      cluster: r.config.to ?? r.config.weighted_clusters?.map((w) => `${w.cluster}:${w.weight}`).join(" ")
        ?? (r.config.compose ? `compose: ${Object.values(r.config.compose.calls).map((c) => c.cluster).join(" ")}` : r.config.module ? `module: ${r.config.module}` : ""),
      requests: requests.get(r.name) ?? 0,
    })),
    clusters: [...rt.clusters.values()].map((c) => {
      const available = new Set(c.available());
      return {
        name: c.name,
        breaker: c.breaker?.state ?? "none",
        active: c.budget.active,
        endpoints: c.endpoints.map((e) => ({
          address: e.address,
          state: !available.has(e) ? (e.health.ejectedUntil > now ? "ejected" : "unhealthy") : e.health.activeHealthy ? "healthy" : "panic",
          active: e.active,
        })),
      };
    }),
  };
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchyard status</title>
<style>
body{font:14px system-ui,sans-serif;margin:2rem;color:#222}h1{font-size:1.3rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;min-width:40rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .8rem;text-align:left}
.healthy{color:#1a7f37}.unhealthy,.ejected,.open{color:#cf222e;font-weight:600}.half_open,.panic{color:#9a6700}
#error{color:#cf222e}
</style></head>
<body><h1>Switchyard <small id="version"></small></h1><p id="error"></p>
<h2>Routes</h2><table><thead><tr><th>route</th><th>cluster</th><th>requests</th><th>req/s</th></tr></thead><tbody id="routes"></tbody></table>
<h2>Clusters</h2><table><thead><tr><th>cluster</th><th>breaker</th><th>in flight</th><th>endpoint</th><th>state</th><th>active</th></tr></thead><tbody id="clusters"></tbody></table>
<div id="fleet" hidden><h2>Fleet <small id="fleet-redis"></small></h2><table><thead><tr><th>instance</th><th>region</th><th>version</th><th>config</th><th>started</th><th>last heartbeat</th><th>req/s</th></tr></thead><tbody id="fleet-rows"></tbody></table></div>
<script>
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { authorization: "Bearer " + token } : {};
let last = null;
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
async function refresh() {
  try {
    const res = await fetch("status.json", { headers });
    if (!res.ok) throw new Error("status " + res.status);
    const s = await res.json();
    const seconds = last ? (Date.parse(s.time) - Date.parse(last.time)) / 1000 : 0;
    document.getElementById("version").textContent = "config v" + s.version;
    document.getElementById("routes").innerHTML = s.routes.map((r) => {
      const before = last && last.routes.find((x) => x.name === r.name);
      const rate = before && seconds > 0 ? ((r.requests - before.requests) / seconds).toFixed(1) : "–";
      return "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.cluster) + "</td><td>" + r.requests + "</td><td>" + rate + "</td></tr>";
    }).join("");
    document.getElementById("clusters").innerHTML = s.clusters.map((c) => c.endpoints.map((e, i) =>
      "<tr data-cluster='" + esc(c.name) + "'><td>" + (i ? "" : esc(c.name)) + "</td><td class='" + esc(c.breaker) + "'>" + (i ? "" : esc(c.breaker)) +
      "</td><td>" + (i ? "" : c.active) + "</td><td>" + esc(e.address) + "</td><td class='" + esc(e.state) + "'>" + esc(e.state) + "</td><td>" + e.active + "</td></tr>").join("")).join("");
    document.getElementById("error").textContent = "";
    last = s;
  } catch (e) {
    document.getElementById("error").textContent = "cannot reach the admin API: " + e.message;
  }
}
// The fleet (GET /fleet, its own JSON): shown only when this instance is part of one.
async function refreshFleet() {
  const f = await fetch("fleet", { headers }).then((r) => (r.ok ? r.json() : null), () => null);
  document.getElementById("fleet").hidden = !f || !f.redis.url;
  if (!f || !f.redis.url) return;
  document.getElementById("fleet-redis").textContent = "fleet config v" + f.fleet_version + (f.redis.reachable ? "" : " — redis unreachable: " + f.redis.error);
  document.getElementById("fleet-rows").innerHTML = f.instances.map((i) => "<tr><td>" + esc(i.id) + (i.self ? " (this)" : "") + "</td><td>" + esc(i.region ?? "") + "</td><td>" + esc(i.version) +
    "</td><td>v" + i.config.version + " / fleet v" + i.config.fleet_version + "</td><td>" + esc(i.started) + "</td><td>" + esc(i.last_heartbeat) + "</td><td>" + i.requests_per_second + "</td></tr>").join("");
}
refresh();
refreshFleet();
setInterval(refresh, 2000);
setInterval(refreshFleet, 2000);
</script></body></html>`;

export function statusRoutes(runtime: RuntimeRef): Hono {
  const app = new Hono();
  app.get("/status.json", async (c) => c.json(await statusSnapshot(runtime)));
  app.get("/status", (c) => c.html(PAGE));
  return app;
}
