/**
 * A backend-for-frontend endpoint as a custom route module: the app's home screen needs a user's
 * profile and their latest orders; one request here makes both calls (in parallel, through the
 * clusters' balancers, breakers, limits, retries and timeouts) and answers just what the screen
 * shows. Mounted by a route such as
 *
 *   modules: { dir: examples/modules }
 *   routes: [{ match: { path: { prefix: /bff } }, module: bff, filters: [...] }]
 *
 * so GET /bff/home/42 reaches `/home/:userId` below.
 */
import { Hono } from "hono";
import type { ModuleEnv } from "../../src/modules/types.ts";

interface User { id: string; name: string; avatar?: string }
interface Order { id: string; total: number; status: string }

const app = new Hono<ModuleEnv>();

app.get("/home/:userId", async (c) => {
  const users = c.env.clusters.get("users");
  const orders = c.env.clusters.get("orders");
  const id = encodeURIComponent(c.req.param("userId"));
  const [profile, recent] = await Promise.all([
    users.fetch(`/users/${id}`),
    // The orders are a nice-to-have: when that cluster fails, the screen shows none.
    orders.fetch(`/orders?user=${id}&limit=3`, { timeout: 500 }).catch(() => undefined),
  ]);
  if (profile.status === 404) {
    await recent?.body?.cancel();
    return c.json({ error: "unknown_user", message: `no user ${c.req.param("userId")}`, request_id: c.env.requestId }, 404);
  }
  const user = (await profile.json()) as User;
  let items: Order[] | null = null;
  if (recent?.ok) items = ((await recent.json()) as { items: Order[] }).items;
  else await recent?.body?.cancel();
  return c.json({
    name: user.name,
    avatar: user.avatar ?? null,
    orders: items?.map((o) => ({ id: o.id, total: o.total, status: o.status })) ?? null,
  });
});

export default app;
