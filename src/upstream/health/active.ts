/**
 * Active health checks: each endpoint is checked on its own timer (interval + jitter); after
 * `unhealthy_threshold` failures in a row it leaves the pool, after `healthy_threshold` passes
 * it comes back. One of the few places that open upstream connections (design.md).
 */
import type { UpstreamTlsOptions } from "../upstream-tls.ts";
import { grpcCheckOnce } from "./grpc-check.ts";
import type { HealthCheckConfig } from "./schema.ts";
import type { HealthState } from "./state.ts";

export interface Checked {
  readonly origin: string;
  readonly hostname: string;
  readonly tls: UpstreamTlsOptions | undefined;
  readonly health: HealthState;
  /** How HTTP requests reach it (fetch, pinned to the cluster's HTTP version; h2c through the pool). */
  readonly send?: (url: string, init: RequestInit) => Promise<Response>;
}

export interface ActiveChecker {
  stop(): void;
}

function passes(config: HealthCheckConfig, status: number): boolean {
  return config.expected_statuses ? config.expected_statuses.includes(status) : status >= 200 && status < 300;
}

/** Checks once; true when the endpoint answered an expected status in time. */
export async function checkOnce(endpoint: Checked, config: HealthCheckConfig): Promise<boolean> {
  if (config.grpc !== undefined) return grpcCheckOnce(endpoint, config.grpc.service, config.timeout, config.host);
  try {
    const res = await (endpoint.send ?? fetch)(endpoint.origin + (config.path ?? "/"), {
      headers: { "user-agent": "switchyard-health-check", ...(config.host ? { host: config.host } : {}) },
      redirect: "manual",
      decompress: false,
      proxy: false,
      signal: AbortSignal.timeout(config.timeout),
      tls: endpoint.tls,
    } as RequestInit);
    await res.body?.cancel();
    return passes(config, res.status);
  } catch {
    return false;
  }
}

/** Applies one check result to the endpoint's state; true when its availability changed. */
export function recordCheck(health: HealthState, config: HealthCheckConfig, passed: boolean): boolean {
  if (passed) {
    health.checkFailures = 0;
    health.checkPasses++;
    if (!health.activeHealthy && health.checkPasses >= config.healthy_threshold) {
      health.activeHealthy = true;
      return true;
    }
  } else {
    health.checkPasses = 0;
    health.checkFailures++;
    if (health.activeHealthy && health.checkFailures >= config.unhealthy_threshold) {
      health.activeHealthy = false;
      return true;
    }
  }
  return false;
}

export function startActiveChecks(endpoints: readonly Checked[], config: HealthCheckConfig, onChange: () => void): ActiveChecker {
  let stopped = false;
  const timers = new Set<Timer>();
  const schedule = (endpoint: Checked, delay: number) => {
    const timer = setTimeout(async () => {
      timers.delete(timer);
      const passed = await checkOnce(endpoint, config);
      if (stopped) return;
      if (recordCheck(endpoint.health, config, passed)) onChange();
      schedule(endpoint, config.interval + Math.random() * config.jitter);
    }, delay);
    timer.unref();
    timers.add(timer);
  };
  // The first round right away (spread over the jitter), so a dead endpoint is found quickly.
  for (const e of endpoints) schedule(e, Math.random() * config.jitter);
  return {
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
