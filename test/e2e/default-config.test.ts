/** `bun start` on the built-in switchyard.yaml is useful at once: /echo shows what the upstream received. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type ProxyProcess, ROOT, spawnProxy } from "../helpers/cli.ts";
import { waitFor } from "../helpers/tmp.ts";
import { freePort } from "../helpers/upstream.ts";
import { wsClient } from "../helpers/ws.ts";


let proxy: ProxyProcess;
beforeAll(async () => {
  proxy = await spawnProxy(`${ROOT}/switchyard.yaml`, { PORT: "0", ADMIN_PORT: String(freePort()), ECHO_PORT: String(freePort()) });
});
afterAll(async () => {
  expect(await proxy.stop()).toBe(0);
});

test("GET /echo shows the request as the upstream received it", async () => {
  const res = await fetch(`${proxy.origin}/echo/hi?x=1`, { headers: { "x-demo": "yes" } });
  expect(res.status).toBe(200);
  expect(res.headers.get("x-served-by")).toBe("switchyard");
  const seen = (await res.json()) as { method: string; path: string; query: Record<string, string>; headers: Record<string, string> };
  expect(seen.method).toBe("GET");
  expect(seen.path).toBe("/echo/hi");
  expect(seen.query).toEqual({ x: "1" });
  expect(seen.headers["x-demo"]).toBe("yes");
  expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
  expect(seen.headers["x-request-id"]).toBe(res.headers.get("x-request-id")!);
});

test("POST /echo returns the body it got", async () => {
  const res = await fetch(`${proxy.origin}/echo`, { method: "POST", body: "ping" });
  expect(((await res.json()) as { body: string }).body).toBe("ping");
});

test("WebSocket /echo echoes", async () => {
  const c = wsClient(`ws://127.0.0.1:${proxy.port}/echo`);
  await c.opened;
  c.ws.send("marco");
  expect((await c.next("message")).data).toBe("marco");
  c.ws.close();
});

test("health and readiness on the admin listener and on the public one", async () => {
  for (const origin of [proxy.adminOrigin!, proxy.origin]) {
    expect(await (await fetch(`${origin}/healthz`)).json()).toEqual({ status: "ok" });
    expect((await fetch(`${origin}/readyz`)).status).toBe(200);
  }
});

test("no route: JSON 404; each request has an access log line on stdout", async () => {
  // The default listener trusts no proxy: a client's own X-Request-Id is replaced.
  const res = await fetch(`${proxy.origin}/nothing-here`, { headers: { "x-request-id": "default-404" } });
  expect(res.status).toBe(404);
  const id = ((await res.json()) as { request_id: string }).request_id;
  expect(id).not.toBe("default-404");
  expect(res.headers.get("x-request-id")).toBe(id);
  const line = JSON.parse(await waitFor(`the access log line of ${id}`, () => proxy.stdout.find((l) => l.includes(id)), 1000)) as Record<string, unknown>;
  expect(line).toMatchObject({ request_id: id, status: 404, error: "no_route", path: "/nothing-here" });
});
