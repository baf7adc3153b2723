/**
 * The status page (admin listener): GET /status, one HTML document with inline CSS and script
 * (no build step, no external file, nothing fetched but its own data), which reads GET
 * /status.json every 2 s and redraws. With an admin token, open it as /status?token=… and it sends
 * the token on its own requests (as a bearer header: /status.json wants it like the rest of the
 * admin API). The data is gathered in src/observe/status-data.ts.
 */
import { Hono } from "hono";
import { workerCount } from "../src/filters/rate-limit/shared-buckets.ts";
import { statusReadings, statusSnapshot } from "../src/runtime/status-data.ts";
import type { RuntimeRef } from "../src/runtime/runtime-ref.ts";
import { STATUS_PAGE } from "./status-page.ts";

export function statusRoutes(runtime: RuntimeRef): Hono {
  // The counters are read every 10 s from now on, so that the page has history when first opened.
  statusReadings();
  const app = new Hono();
  app.get("/status.json", async (c) => c.json(await statusSnapshot(runtime, workerCount()), 200, { "cache-control": "no-store" }));
  app.get("/status", (c) => c.html(STATUS_PAGE, 200, { "cache-control": "no-store" }));
  return app;
}
