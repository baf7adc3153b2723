/**
 * Runs a cluster's discovery: resolves now and then on its refresh (and, for files, on change),
 * handing each new endpoint list to `update`. A failed resolution keeps the last good list and is
 * logged; only a changed list is handed on.
 */
import { type FSWatcher, watch } from "node:fs";
import { resolveDns, resolveSrv } from "./dns.ts";
import { readEndpointsFile } from "./file.ts";
import type { DiscoveryConfig, EndpointSpec } from "./schema.ts";

export interface Discovery {
  /** Resolves once (also the first time); resolves true when the list changed. */
  refresh(): Promise<boolean>;
  stop(): void;
}

function resolver(config: DiscoveryConfig): () => Promise<EndpointSpec[]> {
  switch (config.type) {
    case "dns":
      return () => resolveDns(config);
    case "srv":
      return () => resolveSrv(config);
    case "file":
      return () => readEndpointsFile(config.path);
  }
}

export function startDiscovery(cluster: string, config: DiscoveryConfig, update: (list: EndpointSpec[]) => void): Discovery {
  const resolve = resolver(config);
  let last = "";
  let lastError = "";
  let stopped = false;
  let running: Promise<boolean> | undefined;
  const refresh = () =>
    (running ??= resolve()
      .then((list) => {
        const key = JSON.stringify(list);
        if (stopped || key === last) return false;
        last = key;
        lastError = "";
        update(list);
        return true;
      })
      .catch((e: unknown) => {
        // Logged once per distinct failure, not on every refresh.
        if ((e as Error).message === lastError) return false;
        lastError = (e as Error).message;
        console.error(JSON.stringify({ time: new Date().toISOString(), level: "warn", msg: "discovery failed; the last endpoints stay", cluster, error: (e as Error).message }));
        return false;
      })
      .finally(() => (running = undefined)));
  const timer = setInterval(() => void refresh(), config.refresh);
  timer.unref();
  let watcher: FSWatcher | undefined;
  if (config.type === "file") {
    try {
      watcher = watch(config.path, () => void refresh());
    } catch {
      // not there yet: the interval picks it up
    }
  }
  void refresh();
  return {
    refresh,
    stop() {
      stopped = true;
      clearInterval(timer);
      watcher?.close();
    },
  };
}
