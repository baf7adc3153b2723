/**
 * Gauges read from the live runtime at scrape time: registered here, above both the metrics
 * registry and the runtime they read, so that observe/ does not depend on runtime/. Imported
 * once by main.ts, which points them at the process's current runtime.
 */
import { Gauge } from "../observe/registry.ts";
import { registry } from "../observe/metrics.ts";
import type { Runtime } from "../proxy/context.ts";

const BREAKER_STATE = { closed: 0, open: 1, half_open: 2 } as const;

/** Where the live-state gauges read from: the process's current runtime (set at start). */
let source: (() => Runtime) | undefined;
/** The version_info of the push that put the config in force, if one did. */
let pushedVersionInfo: () => string | undefined = () => undefined;

export function setRuntimeSource(current: () => Runtime, versionInfo?: () => string | undefined): void {
  source = current;
  if (versionInfo) pushedVersionInfo = versionInfo;
}

/** Gauges read from the live runtime at scrape time (registered once per process). */
{
  const current = () => source!();
  const live = (fill: (runtime: Runtime, set: (labels: readonly string[], value: number) => void) => void) =>
    (set: (labels: readonly string[], value: number) => void) => {
      if (source !== undefined) fill(current(), set);
    };
  registry.add(new Gauge("switchyard_config_version", "Version of the config in force (1 at start, +1 per successful reload or accepted push).", [], live((rt, set) => set([], rt.version))));
  // Info-style: one series at most, replaced by each push (never one per version ever pushed).
  registry.add(new Gauge("switchyard_config_push_info", "1, labelled with the version_info of the push that put the config in force; absent when the config came from the file.", ["version_info"], (set) => {
    const info = pushedVersionInfo();
    if (info !== undefined) set([info], 1);
  }));
  registry.add(new Gauge("switchyard_requests_active", "Requests in flight, by cluster.", ["cluster"], live((rt, set) => {
    for (const c of rt.clusters.values()) set([c.name], c.budget.active);
  })));
  registry.add(new Gauge("switchyard_upstream_connections_active", "Upstream exchanges in flight (the max_connections count), by cluster.", ["cluster"], live((rt, set) => {
    for (const c of rt.clusters.values()) set([c.name], c.limits.connections);
  })));
  registry.add(new Gauge("switchyard_endpoint_healthy", "1 when an endpoint may receive requests (healthy and not ejected), else 0.", ["cluster", "endpoint"], live((rt, set) => {
    for (const c of rt.clusters.values()) {
      const up = new Set(c.available());
      for (const e of c.endpoints) set([c.name, e.address], up.has(e) && e.health.activeHealthy && e.health.ejectedUntil <= performance.now() ? 1 : 0);
    }
  })));
  registry.add(new Gauge("switchyard_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", ["cluster"], live((rt, set) => {
    for (const c of rt.clusters.values()) if (c.breaker) set([c.name], BREAKER_STATE[c.breaker.state]);
  })));
}
