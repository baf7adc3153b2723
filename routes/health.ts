/** Liveness and readiness for the admin listener (and Fly's checks). */
import { Hono } from "hono";

export interface HealthOptions {
  /** Ready: a config is loaded and the proxy is not draining. */
  ready: () => boolean;
}

export function healthRoutes(options: HealthOptions): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", (c) => (options.ready() ? c.json({ status: "ready" }) : c.json({ status: "draining" }, 503)));
  return app;
}
