/**
 * Admin API of rollouts and SLOs: `GET /rollouts` (each rollout's state, step, weight, both sides'
 * figures over the current step, the history, and what each worker has in force),
 * `POST /rollouts/{route}/pause|resume|promote|abort|restart`, and `GET /slos` (SLIs, budget
 * remaining, burn rates). With workers, worker 0 serves these and decides for the machine.
 */
import { Hono } from "hono";
import type { RolloutController } from "../src/rollout/controller.ts";
import type { Action } from "../src/rollout/machine.ts";

const ACTIONS = new Set<Action>(["pause", "resume", "promote", "abort", "restart"]);

export function rolloutRoutes(controller: RolloutController): Hono {
  const app = new Hono();
  app.get("/rollouts", (c) => c.json({ rollouts: controller.views(), controller: controller.status() }));
  app.get("/slos", (c) => c.json({ slos: controller.sloViews() }));
  app.post("/rollouts/:route/:action", async (c) => {
    const action = c.req.param("action") as Action;
    if (!ACTIONS.has(action)) return c.json({ error: "not_found", message: `no action "${action}" (pause, resume, promote, abort, restart)` }, 404);
    const result = await controller.act(c.req.param("route"), action);
    if (!result.ok) return c.json({ error: result.status === 404 ? "not_found" : "conflict", message: result.message }, result.status);
    return c.json(result.rollout);
  });
  return app;
}
