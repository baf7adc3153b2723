/** Drain over HTTP/2: GOAWAY at once, open streams finish within the drain timeout, the rest are cut at its end. */
import { afterAll, expect, test } from "bun:test";
import { h2Request, h2Session } from "../helpers/h2-client.ts";
import { startProxy } from "../helpers/proxy.ts";
import { startUpstream } from "../helpers/upstream.ts";

const upstream = startUpstream(async (req) => {
  const ms = Number(new URL(req.url).searchParams.get("ms") ?? 0);
  await Bun.sleep(ms);
  return new Response(`slept ${ms}`);
});

afterAll(() => upstream.stop(true));

test("shutdown sends GOAWAY, lets an open stream finish, refuses new ones", async () => {
  const proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http1", "http2"] }],
    shutdown: { drain_timeout: "3s" },
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [{ to: "up" }],
  });
  const session = await h2Session(`http://127.0.0.1:${proxy.port}`);
  let goaway: { code: number; lastStreamID: number } | undefined;
  session.on("goaway", (code: number, lastStreamID: number) => (goaway = { code, lastStreamID }));
  const inFlight = h2Request(session, { ":path": "/?ms=600" });
  await Bun.sleep(100);
  const started = performance.now();
  const stopped = proxy.stop();
  await Bun.sleep(50);
  expect(goaway).toEqual({ code: 0, lastStreamID: 1 });
  const late = await h2Request(session, { ":path": "/?ms=0" }).catch(() => undefined);
  expect(late === undefined || late.status === 0).toBe(true);
  const answer = await inFlight;
  expect(answer.status).toBe(200);
  expect(answer.body.toString()).toBe("slept 600");
  await stopped;
  // The drain ended when the stream did, not at the drain timeout.
  expect(performance.now() - started).toBeLessThan(2000);
});

test("a stream still open at the drain timeout is cut (the connection closes)", async () => {
  const proxy = await startProxy({
    listeners: [{ address: "127.0.0.1", port: 0, protocols: ["http2"] }],
    shutdown: { drain_timeout: "300ms" },
    clusters: { up: { endpoints: [upstream.origin] } },
    routes: [{ to: "up" }],
  });
  const session = await h2Session(`http://127.0.0.1:${proxy.port}`);
  const inFlight = h2Request(session, { ":path": "/?ms=3000" });
  await Bun.sleep(100);
  const started = performance.now();
  await proxy.stop();
  const answer = await inFlight;
  expect(answer.status).not.toBe(200);
  expect(performance.now() - started).toBeLessThan(1500);
});
