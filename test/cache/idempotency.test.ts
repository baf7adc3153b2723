/** Idempotency keys: forwarded once, replayed after, 422 on reuse, 409 while in flight; records in the libSQL file. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { openStore, type Store } from "../../src/store/client.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { type Gate, gate, startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: TestProxy;
let calls = 0;
let failNext = false;
const dir = tempDir();
/** Where /slow requests wait at the upstream until the test lets them answer. */
let slow: Gate = gate();
slow.open();
/** The records' files, opened by the test as a second client (the proxy has its own). */
const stores = new Map<string, Store>();

beforeAll(async () => {
  up = startUpstream(async (req) => {
    calls++;
    const body = await req.text();
    if (new URL(req.url).pathname === "/slow") await slow.pass();
    if (failNext) {
      failNext = false;
      return new Response("boom", { status: 503 });
    }
    return Response.json({ charge: calls, got: body }, { status: 201, headers: { location: `/charges/${calls}` } });
  });
  proxy = await startProxy({
    routes: [{ name: "payments", to: "u", idempotency: { path: dir.file("state.db"), max_body: "1KiB" } }],
    clusters: { u: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  for (const store of stores.values()) store.close();
  dir.cleanup();
});

/** The rows of the records of `key` (any caller) in the file `name`. */
async function records(key: string, name = "state.db"): Promise<{ state: string; expires_at: number }[]> {
  let store = stores.get(name);
  if (store === undefined) stores.set(name, (store = await openStore(dir.file(name))));
  const result = await store.execute("SELECT state, expires_at FROM idempotency WHERE record_key LIKE ?", [`%\n${key}`]);
  return result.rows.map((r) => ({ state: String(r.state), expires_at: Number(r.expires_at) }));
}

/** An answer is saved as its body finishes, a moment after the client has it: wait for the record. */
const recorded = (key: string, name?: string) => waitFor(`the answer to ${key} recorded`, async () => (await records(key, name)).some((r) => r.state === "done"));

const post = (path: string, body: string, key?: string) =>
  fetch(proxy.origin + path, { method: "POST", body, headers: key ? { "idempotency-key": key, "content-type": "application/json" } : { "content-type": "application/json" } });

test("the first request is forwarded; a repeat is replayed with idempotent-replayed: true and never reaches the upstream", async () => {
  const before = calls;
  const first = await post("/charges", '{"amount":5}', "key-1");
  expect(first.status).toBe(201);
  const firstBody = await first.text();
  await recorded("key-1");
  const again = await post("/charges", '{"amount":5}', "key-1");
  expect(again.status).toBe(201);
  expect(await again.text()).toBe(firstBody);
  expect(again.headers.get("idempotent-replayed")).toBe("true");
  expect(again.headers.get("location")).toBe(first.headers.get("location")!);
  expect(calls).toBe(before + 1);
});

test("the same key with a different request is 422", async () => {
  await (await post("/charges", '{"amount":7}', "key-2")).text();
  await recorded("key-2");
  const other = await post("/charges", '{"amount":8}', "key-2");
  expect(other.status).toBe(422);
  expect(((await other.json()) as { error: string }).error).toBe("idempotency_key_reused");
});

test("a repeat while the first is still in flight is 409", async () => {
  slow = gate();
  const first = post("/slow", "{}", "key-3");
  await slow.arrived(1); // claimed, and at the upstream
  const second = await post("/slow", "{}", "key-3");
  expect(second.status).toBe(409);
  slow.open();
  expect((await first).status).toBe(201);
});

test("a failed first attempt (5xx) leaves no record: the retry goes upstream", async () => {
  failNext = true;
  expect((await post("/charges", "{}", "key-4")).status).toBe(503);
  await waitFor("the claim of key-4 forgotten", async () => (await records("key-4")).length === 0);
  const retry = await post("/charges", "{}", "key-4");
  expect(retry.status).toBe(201);
  expect(retry.headers.get("idempotent-replayed")).toBeNull();
});

test("without a key every request is forwarded; a bad key is 400; a body over max_body is 413", async () => {
  const before = calls;
  await (await post("/charges", "{}")).text();
  await (await post("/charges", "{}")).text();
  expect(calls).toBe(before + 2);
  expect((await post("/charges", "{}", "x".repeat(300))).status).toBe(400);
  expect((await post("/charges", "y".repeat(5000), "key-big")).status).toBe(413);
});

test("records expire: after the ttl the key may be used for a new request", async () => {
  const p = await startProxy({
    routes: [{ name: "short", to: "u", idempotency: { path: dir.file("short.db"), ttl: "1s" } }],
    clusters: { u: { endpoints: [up.origin] } },
  });
  try {
    const send = (body: string) => fetch(`${p.origin}/x`, { method: "POST", body, headers: { "idempotency-key": "k" } });
    expect((await send("one")).status).toBe(201);
    await recorded("k", "short.db");
    expect((await send("two")).status).toBe(422);
    // Past the record's expiry (saved time + ttl, on the wall clock as the record keeps it).
    await waitFor("the record of k expired", async () => (await records("k", "short.db")).every((r) => r.expires_at < Date.now() / 1000), 3000);
    const later = await send("two");
    expect(later.status).toBe(201);
    expect(later.headers.get("idempotent-replayed")).toBeNull();
  } finally {
    await p.stop();
  }
});

test("a client that gives up mid-request and retries with the same key gets the recorded answer; the upstream acted once", async () => {
  const before = calls;
  slow = gate();
  const controller = new AbortController();
  const first = fetch(`${proxy.origin}/slow`, { method: "POST", body: "{}", headers: { "idempotency-key": "key-timeout", "content-type": "application/json" }, signal: controller.signal }).catch((e: Error) => e);
  await slow.arrived(1);
  controller.abort();
  expect(await first).toBeInstanceOf(Error);
  slow.open(); // the upstream finishes; the answer is recorded
  await recorded("key-timeout");
  const retry = await post("/slow", "{}", "key-timeout");
  expect(retry.status).toBe(201);
  expect(retry.headers.get("idempotent-replayed")).toBe("true");
  expect(calls).toBe(before + 1);
});

test("the same key from another caller (credentials) is another record", async () => {
  const send = (who: string) => fetch(`${proxy.origin}/charges`, { method: "POST", body: "{}", headers: { "idempotency-key": "shared-key", authorization: `Bearer ${who}` } });
  const alice = await send("alice");
  await alice.text();
  await recorded("shared-key");
  const bob = await send("bob");
  expect(bob.headers.get("idempotent-replayed")).toBeNull();
  expect((await send("alice")).headers.get("idempotent-replayed")).toBe("true");
});
