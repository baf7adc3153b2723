/**
 * A cached route behind an auth filter: an answer to one authenticated caller is never served to
 * another, whatever carried the credential (RFC 9111 §3.5 names only Authorization; an API key
 * header, a session cookie or a query token authenticates just the same).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sha256Hex } from "../../src/filters/auth/api-key.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

let up: Upstream;
let proxy: TestProxy;
let calls = 0;
const dir = tempDir();

beforeAll(async () => {
  up = startUpstream((req) => {
    calls++;
    const who = req.headers.get("x-api-key") === "alice-key-0123456789" ? "alice" : "bob";
    const path = new URL(req.url).pathname;
    // The upstream forgot `private` on a per-user answer; /catalog says it may be shared.
    const cc = path === "/catalog" ? "public, max-age=60" : "max-age=60";
    return new Response(`${path} of ${path === "/catalog" ? "everyone" : who}`, { headers: { "cache-control": cc } });
  });
  proxy = await startProxy({
    auth: {
      keys: {
        type: "api_key", header: "x-api-key", strip_key: false,
        keys: [{ name: "alice", sha256: sha256Hex("alice-key-0123456789") }, { name: "bob", sha256: sha256Hex("bob-key-0123456789ab") }],
      },
    },
    caches: { main: { path: dir.file("cache.db") } },
    routes: [{ name: "api", match: { path: { prefix: "/" } }, to: "up", cache: { name: "main" }, filters: [{ type: "auth", providers: ["keys"] }] }],
    clusters: { up: { endpoints: [up.origin] } },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  dir.cleanup();
});

const get = async (path: string, key: string) => {
  const res = await fetch(proxy.origin + path, { headers: { "x-api-key": key } });
  return { text: await res.text(), cache: res.headers.get("x-cache") };
};

test("an authenticated caller's answer is not stored for others unless the upstream says public", async () => {
  // Read whole: a store would have happened by now (a fill is stored before the client's stream ends).
  expect((await get("/me", "alice-key-0123456789")).text).toBe("/me of alice");
  expect((await get("/me", "bob-key-0123456789ab")).text).toBe("/me of bob");
  expect((await get("/me", "alice-key-0123456789")).text).toBe("/me of alice");
  // Explicitly shareable (public, s-maxage, must-revalidate) answers are still cached, as for Authorization.
  await get("/catalog", "alice-key-0123456789");
  const before = calls;
  await waitFor("/catalog a HIT for bob", async () => (await get("/catalog", "bob-key-0123456789ab")).cache === "HIT", 1000);
  expect((await get("/catalog", "bob-key-0123456789ab")).text).toBe("/catalog of everyone");
  expect(calls - before).toBeLessThanOrEqual(1);
});
