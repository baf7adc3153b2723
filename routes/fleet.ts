/**
 * GET /fleet (admin listener): the instances of this fleet by their heartbeats — id, region,
 * version, started, last heartbeat, requests/s, the config each runs — as JSON, which the status
 * page fetches on its own. Without a fleet, this instance alone.
 */
import { Hono } from "hono";
import pkg from "../package.json" with { type: "json" };
import { instance } from "../src/fleet/instance.ts";
import type { FleetConfigView, FleetView } from "../src/fleet/types.ts";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";

/** What the admin routes read of the fleet (the agent). */
export interface FleetReader {
  view(): Promise<FleetView>;
  configView(): Promise<FleetConfigView>;
}

export function fleetRoutes(runtime: RuntimeRef, reader: () => FleetReader | undefined = () => undefined): Hono {
  const app = new Hono();
  app.get("/fleet", async (c) => {
    const fleet = reader();
    if (fleet !== undefined) return c.json(await fleet.view());
    const alone: FleetView = {
      self: instance.id,
      redis: { url: "", reachable: false, error: "no fleet configured (fleet.redis)" },
      fleet_version: 0,
      instances: [{
        id: instance.id, region: instance.region ?? null, version: pkg.version, started: instance.startedAt, last_heartbeat: new Date().toISOString(),
        requests_per_second: 0, config: { version: runtime.current.version, fleet_version: 0 }, self: true,
      }],
    };
    return c.json(alone);
  });
  return app;
}
