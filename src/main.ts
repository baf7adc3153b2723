/**
 * Process entry: load config → build runtime → listen → reload on SIGHUP and file change →
 * drain on SIGTERM/SIGINT.
 */
import type { Server } from "bun";
import { ConfigError, configBaseDir, configDocument, configFromText, readConfigFile, validateLiteral } from "./config/load.ts";
import type { Config } from "./config/schema.ts";
import { startEcho } from "./echo/echo.ts";
import { FleetAgent } from "./fleet/agent.ts";
import { bootFleet } from "./fleet/boot.ts";
import { withLocalSections } from "./fleet/document.ts";
import { pushToFleet } from "./fleet/push.ts";
import { flushAll, reopenAll } from "./observe/access-log.ts";
import { metrics } from "./observe/metrics.ts";
import { setRuntimeSource } from "./runtime/live-gauges.ts";
import { flushTraces } from "./observe/span-exporter.ts";
import { endpointFailures } from "./runtime/status-data.ts";
import { listenAsWorker, setLocalFailures } from "./observe/worker-metrics.ts";
import { RolloutController } from "./rollout/controller.ts";
import { RuntimeRef } from "./runtime/runtime-ref.ts";
import { listenForPushes, pushToWorkers, reportFileReload } from "./server/config-sync.ts";
import { type EgressListener, startEgressListener } from "./server/egress-listener.ts";
import { type ProxyListener, reloadListenerTls, type ServerState, startAdminListener, startProxyListener } from "./server/listener.ts";
import { oneAtATime } from "./util/one-at-a-time.ts";
import { watchPaths } from "./util/watch-path.ts";

export function logEvent(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

export interface Running {
  state: ServerState;
  proxies: ProxyListener[];
  /** Listeners with `mode: egress` (worker 0 only). */
  egress: EgressListener[];
  admin?: Server<unknown>;
  echo?: Server<unknown>;
  reload(): Promise<boolean>;
  shutdown(): Promise<void>;
}

/** Listener and fleet settings are bound at start; a reload that changes them is applied to routes only. */
function listenerKey(config: Config): string {
  return JSON.stringify([config.listeners, config.admin, config.echo, config.fleet]);
}

/** Starts every proxy listener; if one fails (a taken port), the ones already up are stopped. */
async function startProxyListeners(config: Config, state: ServerState, reusePort: boolean): Promise<ProxyListener[]> {
  const started: ProxyListener[] = [];
  try {
    for (const [i, l] of config.listeners.entries()) if (l.mode === "proxy") started.push(await startProxyListener(l, i, state, reusePort));
    return started;
  } catch (e) {
    for (const p of started) p.stop(true);
    throw e;
  }
}

/** `worker`: this process's index when it is one of several workers (see server/workers.ts). */
export async function start(configFile: string, worker?: number): Promise<Running> {
  /** The file's text whose config is in force (undefined after a push: then any file change puts the file's back). */
  let fileText: string | undefined = await readConfigFile(configFile);
  const fileConfig = configFromText(configFile, fileText);
  // Proxy listeners are shared by the workers (reusePort); admin, echo and the fleet agent belong to worker 0.
  const first = worker === undefined || worker === 0;
  // A fleet: its services in every process; the agent's process may start from the fleet config saved here.
  const fleet = fileConfig.fleet !== undefined ? await bootFleet(fileConfig, first) : undefined;
  /** The fleet config's part of the config in force (a reload from the file keeps it); undefined without one. */
  let fleetOverlay = fleet?.overlay;
  const config = fleet?.config ?? fileConfig;
  // Rollout states are read from the state file before the first runtime: its first request already has the restored weights.
  const rollouts = new RolloutController({ worker });
  await rollouts.start(config);
  const state: ServerState = { runtime: new RuntimeRef(config, fleet?.services), draining: false, rollouts };
  await rollouts.configure(config);
  setRuntimeSource(() => state.runtime.current, () => state.runtime.versionInfo);
  setLocalFailures(() => endpointFailures(state.runtime.current));
  if (worker !== undefined) listenAsWorker();

  // A config pushed through the admin API or the config service takes effect like a reload, in
  // every worker; the file stays as it is (a later file change or SIGHUP puts the file's config back).
  const putInForce = (next: Config, source: string, versionInfo: string | undefined): number => {
    const runtime = state.runtime.swap(next, versionInfo);
    void rollouts.configure(next);
    fileText = undefined;
    state.runtime.noteChange(source, "ok");
    metrics.reloads.inc(["ok"]);
    logEvent({ msg: "config pushed", source, version: runtime.version, version_info: versionInfo ?? null, worker: worker ?? null });
    return runtime.version;
  };
  /** In force here, then in every other worker of this machine. */
  const inForceHere = async (next: Config, source: string, versionInfo: string | undefined, overlay = fleetOverlay) => {
    const version = putInForce(next, source, versionInfo);
    fleetOverlay = overlay;
    const { workers, failed } = await pushToWorkers({ document: configDocument(next), source, versionInfo, fleet: overlay });
    if (failed.length > 0) logEvent({ level: "error", msg: "a pushed config is not in force in every worker", version, failed });
    return { version, workers };
  };
  // With a fleet, a push or PUT goes to every instance through Redis (fleet/push.ts), and comes
  // back here like any instance's fleet config, through the agent.
  const agent = fleet?.state === undefined ? undefined : new FleetAgent({
    services: fleet.services,
    runtime: () => state.runtime.current,
    apply: (next, record) => inForceHere(next, `fleet config version ${record.version} (${record.source} at ${record.origin})`, record.version_info || undefined, record.document),
  }, fleet.state);
  state.applyConfig = agent !== undefined ? (next, source, versionInfo) => pushToFleet(agent, next, source, versionInfo) : inForceHere;
  state.fleet = agent;
  if (worker !== undefined) {
    listenForPushes((push) => {
      const next = validateLiteral("(pushed config)", push.document, { baseDir: configBaseDir(state.runtime.current.config) });
      fleetOverlay = push.fleet;
      return putInForce(next, push.source, push.versionInfo);
    });
  }
  // Started from the fleet config saved here: the other workers take it too.
  if (fleet?.overlay !== undefined) void pushToWorkers({ document: configDocument(config), source: "saved fleet config", fleet: fleetOverlay });
  // Caught up with the fleet (or found Redis away) before serving: each Redis call is bounded by its timeout.
  await agent?.start();

  const echo = config.echo && first ? startEcho(config.echo.address, config.echo.port) : undefined;
  const proxies = await startProxyListeners(config, state, worker !== undefined).catch(async (e: unknown) => {
    await agent?.stop(); // a listener that cannot bind (a taken port): the process ends, its agent first
    throw e;
  });
  // Egress listeners are node:http servers without reusePort: like admin, they belong to worker 0.
  const egress: EgressListener[] = [];
  if (first) {
    for (const [i, l] of config.listeners.entries()) if (l.mode === "egress") egress.push(await startEgressListener(l, i, state));
  }
  const admin = config.admin && first ? startAdminListener(config.admin, state) : undefined;
  const bound = listenerKey(config);

  /** `force`: SIGHUP and `reload()`; a file event reloads only when the content changed. */
  const reload = async (force: boolean): Promise<boolean> => {
    const read = await readConfigFile(configFile).then((text) => ({ text }), (error: unknown) => ({ error }));
    if (!force && "text" in read && read.text === fileText) {
      logEvent({ msg: "config file unchanged; not reloaded (SIGHUP reloads anyway)" });
      return true;
    }
    reopenAll(); // whatever the new config says, logrotate's moved files are let go
    for (const p of proxies) reloadListenerTls(p); // certificates rotate on SIGHUP too (and on their own file changes)
    try {
      if ("error" in read) throw read.error;
      let next = configFromText(configFile, read.text);
      // With a fleet config in force, the file gives this instance's own sections; the fleet the rest.
      if (fleetOverlay !== undefined) next = validateLiteral(`${configFile} (with the fleet config)`, withLocalSections(fleetOverlay, configDocument(next)), { baseDir: configBaseDir(next) });
      if (listenerKey(next) !== bound) logEvent({ level: "warn", msg: "listener, admin and echo settings change only on restart; routes and clusters were reloaded" });
      const runtime = state.runtime.swap(next);
      void rollouts.configure(next);
      fileText = read.text;
      state.runtime.noteChange("file", "ok");
      metrics.reloads.inc(["ok"]);
      if (fleetOverlay === undefined) reportFileReload(); // else the workers' last push (the fleet's) stays theirs
      logEvent({ msg: "config reloaded", version: runtime.version });
      return true;
    } catch (e) {
      const problems = e instanceof ConfigError ? e.problems : [String(e)];
      metrics.reloads.inc(["rejected"]);
      state.runtime.noteChange("file", "refused", problems);
      logEvent({ level: "error", msg: "config rejected; the previous config stays in force", version: state.runtime.current.version, problems });
      return false;
    }
  };
  // One reload at a time; a burst of requests during one gets one more after it (forced if any was).
  const requestReload = oneAtATime(reload, (a, b) => a || b);

  // The directory is watched, not the file: files replaced by rename (editors, Ansible) or through
  // a symlink swap (Kubernetes ConfigMaps) would leave a watch on the file with a deleted inode.
  const watcher = watchPaths([configFile], () => void requestReload(false), {
    debounceMs: 100, // one save is several events (write + rename, the new link + the old directory's removal)
    onError: (dir, e) => logEvent({ level: "warn", msg: "cannot watch the config file's directory; reload with SIGHUP", dir, error: String(e) }),
  });
  const onHup = () => void requestReload(true);
  process.on("SIGHUP", onHup);
  // Last: once this is said, a file change or SIGHUP is heard (a save made right after it was missed).
  logEvent({
    msg: "switchyard started", config: configFile, version: state.runtime.current.version, worker: worker ?? null, pid: process.pid,
    listeners: proxies.map((s) => s.url.href), egress: egress.map((e) => e.url), admin: admin?.url.href ?? null, echo: echo?.url.href ?? null,
  });

  const shutdown = async (): Promise<void> => {
    if (state.draining) return;
    state.draining = true;
    watcher.close();
    process.off("SIGHUP", onHup);
    const deadline = Date.now() + config.shutdown.drain_timeout;
    logEvent({ msg: "draining", deadline_ms: config.shutdown.drain_timeout });
    // Stop accepting; in-flight requests (and their streamed bodies) go on until done or deadline.
    for (const s of proxies) s.stop(false);
    for (const e of egress) e.stop(false);
    const busy = () => proxies.some((s) => s.pending() > 0) || egress.some((e) => e.active() > 0);
    while (Date.now() < deadline && busy()) await Bun.sleep(50);
    for (const s of proxies) s.stop(true);
    for (const e of egress) e.stop(true);
    void admin?.stop(true);
    void echo?.stop(true);
    await agent?.stop();
    fleet?.services.dispose();
    state.runtime.current.dispose();
    await rollouts.stop();
    // The last spans (those of the drained requests too) go out, each exporter within its export_timeout.
    await flushTraces();
    flushAll();
    logEvent({ msg: "stopped" });
  };

  return { state, proxies, egress, admin, echo, reload: () => requestReload(true), shutdown };
}
