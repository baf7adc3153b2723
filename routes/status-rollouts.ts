/**
 * The status page's rollouts and SLOs block: its own tables and script, reading the admin API's
 * GET /rollouts and GET /slos (with the page's token) every 2 s. Kept apart from status.ts so the
 * page can change around it; the page inserts ROLLOUTS_STATUS_BLOCK once. Hidden when no route
 * has a rollout or an SLO.
 */
export const ROLLOUTS_STATUS_BLOCK = `
<style>.progressing{color:#0969da}.promoted{color:#1a7f37}.paused{color:#9a6700}.rolled_back{color:#cf222e;font-weight:600}</style>
<section id="rollouts-block" hidden>
<h2>Rollouts</h2><table><thead><tr><th>route</th><th>state</th><th>step</th><th>canary weight</th><th>canary errors / p99</th><th>stable errors / p99</th><th>reason</th></tr></thead><tbody id="rollouts"></tbody></table>
<details><summary>history</summary><table><thead><tr><th>route</th><th>at</th><th>event</th><th>step</th><th>weight</th><th>reason</th></tr></thead><tbody id="rollout-history"></tbody></table></details>
<h2>SLOs</h2><table><thead><tr><th>route</th><th>SLI</th><th>objective</th><th>budget left</th><th>burn 5m</th><th>30m</th><th>1h</th><th>6h</th></tr></thead><tbody id="slos"></tbody></table>
</section>
<script>
(() => {
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { authorization: "Bearer " + token } : {};
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const pct = (f) => (f * 100).toFixed(2) + "%";
  const side = (f) => pct(f.error_rate) + " of " + f.requests + " / " + f.p99_ms + " ms";
  async function refreshRollouts() {
    try {
      const [r, s] = await Promise.all([fetch("rollouts", { headers }), fetch("slos", { headers })]);
      if (!r.ok || !s.ok) return;
      const { rollouts } = await r.json();
      const { slos } = await s.json();
      document.getElementById("rollouts-block").hidden = rollouts.length === 0 && slos.length === 0;
      document.getElementById("rollouts").innerHTML = rollouts.map((x) =>
        "<tr data-route='" + esc(x.route) + "'><td>" + esc(x.route) + "</td><td class='" + esc(x.state) + "'>" + esc(x.state) + "</td><td>" + x.step + " of " + x.steps.length +
        "</td><td>" + x.weight + "%</td><td>" + side(x.figures.canary) + "</td><td>" + side(x.figures.stable) + "</td><td>" + esc(x.reason ?? "") + "</td></tr>").join("");
      document.getElementById("rollout-history").innerHTML = rollouts.flatMap((x) => x.history.slice().reverse().map((h) =>
        "<tr><td>" + esc(x.route) + "</td><td>" + esc(h.at) + "</td><td>" + esc(h.event) + "</td><td>" + (h.step + 1) + "</td><td>" + h.weight + "%</td><td>" + esc(h.reason ?? "") + "</td></tr>")).join("");
      document.getElementById("slos").innerHTML = slos.flatMap((x) => [["availability", x.availability], ["latency", x.latency]].filter(([, v]) => v).map(([sli, v]) =>
        "<tr data-route='" + esc(x.route) + "'><td>" + esc(x.route) + "</td><td>" + sli + "</td><td>" + pct(v.objective) + " / " + x.window_hours + "h</td><td>" + pct(v.budget_remaining) +
        "</td>" + ["5m", "30m", "1h", "6h"].map((w) => "<td>" + v.burn_rates[w].toFixed(2) + "×</td>").join("") + "</tr>")).join("");
    } catch {}
  }
  refreshRollouts();
  setInterval(refreshRollouts, 2000);
})();
</script>`;
