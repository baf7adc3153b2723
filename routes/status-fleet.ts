/**
 * The status page's fleet block: instances, regions, versions and heartbeats from GET /fleet (with
 * the page's token) every 2 s. Hidden when this instance is not part of a fleet. Kept apart from
 * status-page.ts, which inserts FLEET_STATUS_BLOCK once.
 */
export const FLEET_STATUS_BLOCK = `
<section id="fleet" hidden><h2>Fleet <small id="fleet-redis"></small></h2><table><thead><tr><th>instance</th><th>region</th><th>version</th><th>config</th><th>started</th><th>last heartbeat</th><th>req/s</th></tr></thead><tbody id="fleet-rows"></tbody></table></section>
<script>
(() => {
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { authorization: "Bearer " + token } : {};
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  async function refreshFleet() {
    const f = await fetch("fleet", { headers }).then((r) => (r.ok ? r.json() : null), () => null);
    document.getElementById("fleet").hidden = !f || !f.redis.url;
    if (!f || !f.redis.url) return;
    document.getElementById("fleet-redis").textContent = "fleet config v" + f.fleet_version + (f.redis.reachable ? "" : " — redis unreachable: " + f.redis.error);
    document.getElementById("fleet-rows").innerHTML = f.instances.map((i) => "<tr><td>" + esc(i.id) + (i.self ? " (this)" : "") + "</td><td>" + esc(i.region ?? "") + "</td><td>" + esc(i.version) +
      "</td><td>v" + i.config.version + " / fleet v" + i.config.fleet_version + "</td><td>" + esc(i.started) + "</td><td>" + esc(i.last_heartbeat) + "</td><td>" + i.requests_per_second + "</td></tr>").join("");
  }
  refreshFleet();
  setInterval(refreshFleet, 2000);
})();
</script>`;
