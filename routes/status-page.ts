/**
 * The status page's document: inline CSS, inline script, inline SVG charts — no library, nothing
 * fetched but /status.json (every 2 s). After each successful refresh the script sets
 * `data-refreshes` (a count) and `data-state` (ok | degraded | failing) on <html>, which tests and
 * scripts can wait for. Rows carry `data-route` / `data-cluster` / `data-endpoint` and `data-state`.
 */
import { FLEET_STATUS_BLOCK } from "./status-fleet.ts";
import { ROLLOUTS_STATUS_BLOCK } from "./status-rollouts.ts";

export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Switchyard status</title>
<style>
:root{--red:#c62828;--red-bg:#fdecea;--amber:#8a5a00;--amber-bg:#fff4d6;--green:#1b7f3b;--green-bg:#e8f5ec;--grey:#6b7280;--line:#e3e6ea;--ink:#1f2328}
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--ink);background:#f6f7f9;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.routes th,.routes td{width:1%}.routes .grow{width:auto}
header{display:flex;align-items:baseline;gap:1rem;background:#1f2328;color:#fff;padding:.6rem 1.2rem}
header h1{font-size:1.05rem;margin:0;font-weight:600}header .meta{color:#c9d1d9;margin-left:auto}
#live{display:inline-block;width:.55rem;height:.55rem;border-radius:50%;background:#3fb950;margin-left:.4rem}
main{padding:0 1.2rem 2rem}
#banner{margin:1rem 0;padding:.75rem 1rem;border-radius:6px;font-size:1.05rem;font-weight:600;border-left:6px solid}
#banner.ok{background:var(--green-bg);border-color:var(--green);color:var(--green)}
#banner.degraded{background:var(--amber-bg);border-color:#d4a72c;color:var(--amber)}
#banner.failing{background:var(--red);border-color:#7f1010;color:#fff}
#banner ul{margin:.35rem 0 0;padding-left:1.2rem;font-weight:400;font-size:.92rem}
#stale{margin:1rem 0;padding:.6rem 1rem;background:#fff;border:2px dashed var(--red);color:var(--red);font-weight:600}
h2{font-size:.95rem;margin:1.4rem 0 .5rem;text-transform:uppercase;letter-spacing:.04em;color:#57606a}
h2 small{text-transform:none;letter-spacing:0;font-weight:400}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th{font-weight:600;color:#57606a;font-size:.78rem;text-align:right;padding:.35rem .45rem;border-bottom:1px solid var(--line);white-space:nowrap;background:#fafbfc}
td{padding:.4rem .45rem;border-bottom:1px solid var(--line);text-align:right;vertical-align:top;white-space:nowrap}
th.l,td.l{text-align:left}td.wrap{white-space:normal}
tr.failing td{background:var(--red-bg)}tr.failing td:first-child{box-shadow:inset 5px 0 var(--red)}
tr.degraded td{background:#fffbeb}tr.degraded td:first-child{box-shadow:inset 5px 0 #d4a72c}
tr.idle td{color:var(--grey)}
.pill{display:inline-block;min-width:4.6rem;text-align:center;padding:.05rem .45rem;border-radius:999px;font-size:.75rem;font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.pill.ok{background:var(--green-bg);color:var(--green)}.pill.degraded{background:#ffe9a8;color:var(--amber)}
.pill.failing{background:var(--red);color:#fff}.pill.idle{background:#eef0f3;color:var(--grey)}
.name{font-weight:600}.why{font-size:.8rem;color:var(--red);white-space:normal;max-width:36rem;margin-top:.15rem}
.card table{table-layout:fixed}
tr.degraded .why,.card.degraded .why{color:var(--amber)}
.bad{color:var(--red);font-weight:700}.warn{color:var(--amber);font-weight:600}.dim{color:var(--grey)}
.chain{display:flex;align-items:center;gap:.25rem;flex-wrap:wrap;max-width:20rem;white-space:nowrap}
tr.has-why td{border-bottom:0}tr.why-row td{padding-top:0}tr.why-row td:first-child{box-shadow:none}
tr.failing.why-row td:first-child{box-shadow:inset 5px 0 var(--red)}tr.degraded.why-row td:first-child{box-shadow:inset 5px 0 #d4a72c}
.why-row .why{max-width:none;margin:0;font-size:.85rem}
.link{border:1px solid var(--line);border-radius:4px;padding:.05rem .35rem;background:#fff}
.link.failing{border-color:var(--red);color:var(--red)}.link.degraded{border-color:#d4a72c;color:var(--amber)}
.link.serving{font-weight:700;box-shadow:0 0 0 2px #0969da55}.link .n{font-weight:400;color:var(--grey);font-size:.75rem}
svg.spark{display:block}svg.spark text{font-size:10px;fill:#57606a}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;margin-bottom:.8rem;overflow:hidden}
.card.failing{border:2px solid var(--red)}.card.degraded{border:2px solid #d4a72c}
.card-head{display:flex;align-items:center;gap:1rem;padding:.55rem .75rem;flex-wrap:wrap}
.card.failing .card-head{background:var(--red-bg)}.card.degraded .card-head{background:#fffbeb}
.card-head .title{flex:1 1 18rem;min-width:0}.card-head .stats{display:flex;gap:1rem;margin-left:auto;align-items:center;flex:none}
.stat{text-align:right}.stat b{display:block;font-size:.95rem}.stat span{font-size:.72rem;color:var(--grey)}
.card table{border:0;border-top:1px solid var(--line)}
.failure{white-space:normal;max-width:40rem}.failure code{font-weight:700;color:var(--red)}
</style></head>
<body>
<header><h1>Switchyard status</h1><span id="version"></span><span class="meta" id="meta">loading…</span></header>
<main>
<div id="stale" hidden></div>
<div id="banner" class="idle">loading…</div>
<h2>Routes <small id="window"></small></h2>
<div class="scroll"><table class="routes"><thead><tr><th class="l">state</th><th class="l grow">route</th><th class="l">clusters → failover (▶ serving; requests)</th><th>req/s</th><th>errors</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th><th title="errors the proxy answered itself: no answer, timeout, no endpoint, breaker open">failed</th><th>p50 / p99</th><th>retries</th><th class="l">req/s</th><th class="l">errors/s</th><th class="l">p99</th><th title="since start">total</th></tr></thead><tbody id="routes"></tbody></table></div>
<h2>Clusters and endpoints</h2><div id="clusters"></div>
<h2>Config</h2><table><thead><tr><th class="l">when</th><th class="l">what</th><th class="l">result</th><th>version</th><th class="l">first problem</th></tr></thead><tbody id="changes"></tbody></table>
</main>
<script>
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const rate = (n) => n === 0 ? "0" : n < 1 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString("en");
const pct = (r) => r === null ? "–" : r === 0 ? "0%" : r >= 0.995 ? Math.round(r * 100) + "%" : (r * 100).toFixed(r < 0.1 ? 2 : 1) + "%";
const ms = (v) => v === null ? "–" : v >= 1000 ? (v / 1000).toFixed(v >= 10000 ? 0 : 1) + " s" : v >= 10 ? Math.round(v) + " ms" : v.toFixed(1) + " ms";
const ago = (s) => s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
const count = (n, cls) => n > 0 && cls ? "<span class='" + cls + "'>" + n.toLocaleString("en") + "</span>" : n > 0 ? n.toLocaleString("en") : "<span class='dim'>0</span>";
const pill = (state, label) => "<span class='pill " + esc(state) + "'>" + esc(label || (state === "ok" ? "ok" : state)) + "</span>";
const errClass = (r) => r === null ? "" : r >= 0.5 ? "bad" : r >= 0.05 ? "warn" : "";

/** An inline SVG sparkline with its latest value beside it; null values (no requests: no p99) leave gaps. */
function spark(values, color, unit) {
  const w = 112, cw = 70, h = 28, pad = 3;
  const nums = values.filter((v) => v !== null);
  const max = Math.max(0, ...nums);
  const fmt = (v) => unit === "ms" ? ms(v) : rate(v) + unit;
  const title = nums.length ? values.length + " intervals of up to 10 s; max " + fmt(max) : "no data yet";
  const step = values.length > 1 ? cw / (values.length - 1) : 0;
  const x = (i) => (values.length > 1 ? i * step : cw).toFixed(1);
  const y = (v) => (h - pad - (max > 0 ? (v / max) * (h - 2 * pad) : 0)).toFixed(1);
  let path = "", pen = false;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    path += (pen ? "L" : "M") + x(i) + " " + y(v);
    pen = true;
  });
  const last = nums.length ? nums[nums.length - 1] : null;
  const lastIndex = values.lastIndexOf(last);
  return "<svg class='spark' width='" + w + "' height='" + h + "' viewBox='0 0 " + w + " " + h + "'><title>" + esc(title) + "</title>" +
    "<line x1='0' y1='" + (h - pad) + "' x2='" + cw + "' y2='" + (h - pad) + "' stroke='#e3e6ea'/>" +
    (path ? "<path d='" + path + "' fill='none' stroke='" + color + "' stroke-width='1.6' stroke-linejoin='round'/>" : "") +
    (last !== null ? "<circle cx='" + x(lastIndex) + "' cy='" + y(last) + "' r='2.2' fill='" + color + "'/>" : "") +
    "<text x='" + (cw + 5) + "' y='" + (h / 2 + 4) + "'>" + esc(last === null ? "–" : unit === "ms" ? ms(last) : rate(last)) + "</text></svg>";
}

/** The route's clusters in order: primaries (+ between weighted ones), an override, then the failover chain (→). */
function chain(r) {
  if (r.chain.length === 0) return "<span class='dim'>" + esc(r.kind) + "</span>";
  const joint = (l) => l.role === "failover" ? "→" : l.role === "override" ? "| override" : l.role === "call" ? "," : "+";
  return "<div class='chain'>" + r.chain.map((l, i) => (i ? "<span class='dim'>" + joint(l) + "</span>" : "") +
    "<span class='link " + esc(l.state) + (l.serving ? " serving" : "") + "' data-chain-cluster='" + esc(l.cluster) + "' data-serving='" + l.serving + "' title='" +
    esc(l.role + (l.weight !== null ? " (weight " + l.weight + ")" : "") + (l.serving ? ", serving now" : "") + ": " + l.available + " of " + l.endpoints + " endpoints available; " + l.requests + " of this route's requests in the last minute") + "'>" +
    (l.serving ? "▶ " : "") + esc(l.cluster) + (l.weight !== null ? " <span class='n'>w" + l.weight + "</span>" : "") + " <span class='n'>" + l.requests + "</span></span>").join("") + "</div>";
}

function trafficCells(t) {
  const c = t.classes;
  return "<td>" + rate(t.rate) + "</td><td class='" + errClass(t.error_rate) + "'>" + pct(t.error_rate) + "</td><td>" + count(c["2xx"]) + "</td><td>" + count(c["3xx"]) + "</td><td>" + count(c["4xx"]) +
    "</td><td>" + count(c["5xx"], "bad") + "</td><td>" + count(c.failed, "bad") + "</td><td>" + ms(t.p50_ms) + " <span class='dim'>/</span> " + ms(t.p99_ms) + "</td><td>" + count(t.retries, "warn") + "</td>";
}

const charts = (ch) => "<td class='l'>" + spark(ch.rate, "#0969da", "/s") + "</td><td class='l'>" + spark(ch.errors, "#c62828", "/s") + "</td><td class='l'>" + spark(ch.p99_ms, "#8250df", "ms") + "</td>";
const why = (x) => x.state === "ok" || x.state === "idle" || x.reasons.length === 0 ? "" : "<div class='why'>" + x.reasons.map(esc).join("; ") + "</div>";
const ROUTE_COLUMNS = 16;

function drawRoutes(s) {
  $("routes").innerHTML = s.routes.map((r) => {
    const reasons = why(r);
    return "<tr class='" + esc(r.state) + (reasons ? " has-why" : "") + "' data-route='" + esc(r.name) + "' data-state='" + esc(r.state) + "'><td class='l'>" + pill(r.state) + "</td><td class='l grow'><span class='name'>" + esc(r.name) + "</span>" +
      "</td><td class='l'>" + chain(r) + "</td>" + trafficCells(r.traffic) + charts(r.chart) + "<td>" + r.requests.toLocaleString("en") + "</td></tr>" +
      (reasons ? "<tr class='" + esc(r.state) + " why-row'><td></td><td class='l' colspan='" + (ROUTE_COLUMNS - 1) + "'>" + reasons + "</td></tr>" : "");
  }).join("");
}

function endpointRow(e) {
  const f = e.last_failure;
  const failure = f ? "<code>" + esc(f.code) + "</code> " + esc(f.message) + " <span class='dim'>· " + esc(ago(f.ago_s)) + "</span>" : "<span class='dim'>none</span>";
  return "<tr class='" + esc(e.state) + "' data-endpoint='" + esc(e.address) + "' data-state='" + esc(e.state) + "'><td class='l'>" + pill(e.state, e.label) + "</td><td class='l'><span class='name'>" + esc(e.address) + "</span>" +
    (e.weight !== 1 ? " <span class='dim'>weight " + e.weight + "</span>" : "") + why(e) + "</td><td class='l'>" +
    (e.health_check === "none" ? "<span class='dim'>not checked</span>" : e.health_check === "passing" ? "passing" : "<span class='bad'>failing</span>") + "</td><td class='l'>" +
    (e.ejected_for_ms > 0 ? "<span class='bad'>ejected " + Math.ceil(e.ejected_for_ms / 1000) + " s</span>" : e.ejections > 0 ? "<span class='dim'>" + e.ejections + "× before</span>" : "<span class='dim'>no</span>") +
    "</td><td>" + e.tries.total + "</td><td class='" + errClass(e.tries.error_rate) + "'>" + pct(e.tries.error_rate) + "</td><td>" + e.active + "</td><td class='l failure'>" + failure + "</td></tr>";
}

function drawClusters(s) {
  $("clusters").innerHTML = s.clusters.map((c) => {
    const t = c.traffic;
    const stat = (v, label, cls) => "<div class='stat'><b class='" + (cls || "") + "'>" + v + "</b><span>" + label + "</span></div>";
    return "<div class='card " + esc(c.state) + "' data-cluster='" + esc(c.name) + "' data-state='" + esc(c.state) + "'><div class='card-head'>" + pill(c.state) +
      "<div class='title'><span class='name'>" + esc(c.name) + "</span> <span class='dim'>" + esc(c.balancer) + " · breaker </span><span class='" + (c.breaker === "open" ? "bad" : c.breaker === "half_open" ? "warn" : "") + "'>" + esc(c.breaker) +
      "</span><span class='dim'> · " + c.available + " of " + c.endpoints.length + " available · " + c.in_flight + " in flight" + (c.panic ? " · </span><span class='warn'>panic</span>" : "</span>") + why(c) + "</div>" +
      "<div class='stats'>" + stat(rate(t.rate), "req/s") + stat(pct(t.error_rate), "errors", errClass(t.error_rate)) + stat(t.classes["5xx"] + " / " + t.classes.failed, "5xx / failed", t.classes["5xx"] + t.classes.failed > 0 ? "bad" : "") +
      stat(ms(t.p50_ms) + " / " + ms(t.p99_ms), "p50 / p99 upstream") + stat(t.retries, "retries", t.retries > 0 ? "warn" : "") +
      spark(c.chart.rate, "#0969da", "/s") + spark(c.chart.errors, "#c62828", "/s") + spark(c.chart.p99_ms, "#8250df", "ms") + "</div></div>" +
      "<table><colgroup><col style='width:8rem'><col style='width:20rem'><col style='width:8rem'><col style='width:7rem'><col style='width:6rem'><col style='width:5rem'><col style='width:5rem'><col></colgroup>" +
      "<thead><tr><th class='l'>state</th><th class='l'>endpoint</th><th class='l'>health check</th><th class='l'>ejected</th><th>tries/min</th><th>failed</th><th>in flight</th><th class='l'>last failure</th></tr></thead><tbody>" +
      c.endpoints.map(endpointRow).join("") + "</tbody></table></div>";
  }).join("");
}

function drawBanner(s) {
  const b = $("banner");
  b.className = s.summary.state;
  const items = s.summary.state === "failing"
    ? s.routes.filter((r) => r.state === "failing").map((r) => "route <b>" + esc(r.name) + "</b>: " + esc(r.reasons[0] || "failing"))
      .concat(s.clusters.filter((c) => c.state === "failing").map((c) => "cluster <b>" + esc(c.name) + "</b>: " + esc(c.reasons[0] || "failing")))
    : s.summary.state === "degraded" ? s.routes.filter((r) => r.state === "degraded").map((r) => "route <b>" + esc(r.name) + "</b>: " + esc(r.reasons[0] || "degraded")) : [];
  b.innerHTML = (s.summary.state === "failing" ? "✖ " : s.summary.state === "degraded" ? "▲ " : "✔ ") + esc(s.summary.headline.charAt(0).toUpperCase() + s.summary.headline.slice(1)) +
    (items.length ? "<ul>" + items.map((i) => "<li>" + i + "</li>").join("") + "</ul>" : "");
}

function drawChanges(s) {
  $("changes").innerHTML = s.config_changes.map((c) => "<tr class='" + (c.result === "ok" ? "" : "failing") + "'><td class='l'>" + esc(new Date(c.at).toLocaleString()) + "</td><td class='l'>" + esc(c.source) +
    "</td><td class='l'>" + (c.result === "ok" ? "<span class='pill ok'>ok</span>" : "<span class='pill failing'>refused</span>") + "</td><td>" + c.version + "</td><td class='l wrap'>" +
    (c.problem === null ? "" : esc(c.problem) + (c.problems > 1 ? " <span class='dim'>(+" + (c.problems - 1) + " more)</span>" : "")) + "</td></tr>").join("");
}

let refreshes = 0;
let lastTime = "";
async function refresh() {
  try {
    const res = await fetch("status.json", { headers, cache: "no-store" });
    if (!res.ok) throw new Error(res.status === 401 ? "the admin token is missing or wrong (open this page as /status?token=…)" : "HTTP " + res.status);
    const s = await res.json();
    $("version").textContent = "config v" + s.version + (s.version_info ? " (" + s.version_info + ")" : "");
    $("meta").innerHTML = esc(s.workers + " worker" + (s.workers === 1 ? "" : "s") + (s.workers > 1 ? " (totals over all)" : "") + " · updated " + new Date(s.time).toLocaleTimeString()) + "<span id='live' title='refreshing every 2 s'></span>";
    $("window").textContent = (s.window_s < 55 ? "since start (" + (s.window_s < 1 ? "<1" : s.window_s) + " s)" : "last minute") + " · charts: " + s.interval_s + " s intervals over 15 min";
    drawBanner(s);
    drawRoutes(s);
    drawClusters(s);
    drawChanges(s);
    $("stale").hidden = true;
    lastTime = new Date(s.time).toLocaleTimeString();
    document.documentElement.dataset.state = s.summary.state;
    document.documentElement.dataset.refreshes = String(++refreshes);
  } catch (e) {
    $("stale").hidden = false;
    $("stale").textContent = "Cannot reach the admin API: " + e.message + (lastTime ? " — the data below is from " + lastTime : "");
    if (!lastTime) $("banner").textContent = "no data";
  }
}
refresh();
setInterval(refresh, 2000);
</script>${ROLLOUTS_STATUS_BLOCK}${FLEET_STATUS_BLOCK}</body></html>`;
