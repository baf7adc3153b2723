/**
 * The api_key provider through the proxy: keys from a header or a query parameter, hashed in the
 * config or a file, names and tiers, stripped before the upstream, never logged; several providers
 * on one route; `switchyard hash-key`.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../../src/filters/auth/api-key.ts";
import { parseText, validateConfig } from "../../src/config/load.ts";
import { buildRuntime } from "../../src/runtime/build.ts";
import { errorOf, sign, type SigningKey } from "../helpers/auth.ts";
import { startProxy, type TestProxy } from "../helpers/proxy.ts";
import { tempDir } from "../helpers/tmp.ts";
import { recordingUpstream } from "../helpers/upstream.ts";

const KEYS = { acme: "acme-live-4f9a2c0e1b7d", globex: "globex-live-88d1e0aa93f2", partner: "partner-key-from-file-1", json: "json-file-key-000000001" };
const SECRET = "jwt-secret-for-the-mixed-route-32b!";
const dir = tempDir();
let up: ReturnType<typeof recordingUpstream>;
let proxy: TestProxy;

beforeAll(async () => {
  writeFileSync(dir.file("keys.yaml"), `- { name: partner, tier: premium, sha256: ${sha256Hex(KEYS.partner).toUpperCase()} }\n`);
  writeFileSync(dir.file("keys.json"), JSON.stringify([{ name: "json-client", sha256: sha256Hex(KEYS.json) }]));
  up = recordingUpstream();
  proxy = await startProxy({
    auth: {
      keys: {
        type: "api_key", query: "k",
        keys: [{ name: "acme", tier: "free", sha256: sha256Hex(KEYS.acme) }, { name: "globex", tier: "premium", sha256: sha256Hex(KEYS.globex) }],
        keys_file: dir.file("keys.yaml"),
      },
      partners: { type: "api_key", header: "x-partner-key", keys_file: dir.file("keys.json"), strip_key: false },
      signed: { type: "jwt", algorithms: ["HS256"], keys: [{ secret: SECRET }] },
    },
    routes: [
      { name: "keys", match: { path: { prefix: "/keys" } }, to: "api", filters: [{ type: "auth", providers: ["keys"] }] },
      { name: "partners", match: { path: { prefix: "/partners" } }, to: "api", filters: [{ type: "auth", providers: ["partners"] }] },
      { name: "mixed", match: { path: { prefix: "/mixed" } }, to: "api", filters: [{ type: "auth", providers: ["signed", "keys", "partners"] }] },
    ],
    clusters: { api: { endpoints: [up.origin] } },
    access_log: { headers: ["x-partner-key", "x-api-key", "user-agent"] },
  });
});
afterAll(async () => {
  await proxy.stop();
  up.stop(true);
  dir.cleanup();
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${proxy.origin}${path}`, { headers });

test("a key from the header is accepted with its name and tier, and stripped before the upstream", async () => {
  up.seen.length = 0;
  const res = await get("/keys/a", { "x-api-key": KEYS.globex, "x-request-id": "key-hdr" });
  expect(res.status).toBe(200);
  expect(up.seen[0]!.headers["x-api-key"]).toBeUndefined();
  expect(await proxy.logOf("key-hdr")).toMatchObject({ auth: { provider: "keys", subject: "globex", tier: "premium" }, headers: { "x-api-key": "[redacted]" } });
});

test("a key from the query parameter is accepted and left off the upstream URL; keys from the file too", async () => {
  up.seen.length = 0;
  expect((await get(`/keys/q?x=1&k=${KEYS.acme}&y=2`, { "x-request-id": "key-query" })).status).toBe(200);
  expect(up.seen[0]!.url.search).toBe("?x=1&y=2");
  expect(await proxy.logOf("key-query")).toMatchObject({ path: "/keys/q?x=1&k=[redacted]&y=2", auth: { subject: "acme", tier: "free" } });
  expect((await get("/keys/f", { "x-api-key": KEYS.partner })).status).toBe(200);
  expect((await get("/partners", { "x-partner-key": KEYS.json, "x-request-id": "key-json" })).status).toBe(200);
  expect(up.seen.at(-1)!.headers["x-partner-key"]).toBe(KEYS.json); // strip_key: false
  expect(await proxy.logOf("key-json")).toMatchObject({ auth: { subject: "json-client" }, headers: { "x-partner-key": "[redacted]" } });
});

test("wrong, near-miss, oversize and empty keys: 401 invalid_api_key, the same answer for each", async () => {
  up.seen.length = 0;
  const near = [KEYS.acme.slice(0, -1), `${KEYS.acme}x`, `X${KEYS.acme.slice(1)}`, KEYS.acme.toUpperCase(), "k".repeat(5000), sha256Hex(KEYS.acme), " "];
  for (const key of near) {
    const res = await get("/keys/a", { "x-api-key": key });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('ApiKey realm="switchyard", error="invalid_api_key", error_description="the API key is not recognised"');
    const body = await errorOf(res);
    expect([body.error, body.message]).toEqual(["invalid_api_key", "the API key is not recognised"]);
  }
  // A query key given twice: refused, whichever copy is valid (the upstream might read the other).
  expect((await get(`/keys/q?k=${KEYS.acme}&k=guess`)).status).toBe(401);
  expect((await get(`/keys/q?k=guess&k=${KEYS.acme}`)).status).toBe(401);
  // A key for another provider is not one of this provider's.
  expect((await get("/partners", { "x-partner-key": KEYS.acme })).status).toBe(401);
  expect(up.seen).toHaveLength(0);
});

test("no key: 401 naming where keys go", async () => {
  const res = await get("/keys/a");
  expect(res.status).toBe(401);
  expect(res.headers.get("www-authenticate")).toBe('ApiKey realm="switchyard"');
  expect((await errorOf(res)).message).toBe("this route needs a credential (the x-api-key header or the k query parameter)");
});

test("several providers: the first that accepts wins; a refusal is reported only when none accepts", async () => {
  const none = await get("/mixed");
  expect(none.headers.get("www-authenticate")).toBe('Bearer realm="switchyard", ApiKey realm="switchyard"');
  const token = await sign({ kid: "x", alg: "HS256", privateKey: new TextEncoder().encode(SECRET) } as unknown as SigningKey, { sub: "svc" });
  expect((await get("/mixed", { authorization: `Bearer ${token}`, "x-request-id": "mixed-jwt" })).status).toBe(200);
  expect(await proxy.logOf("mixed-jwt")).toMatchObject({ auth: { provider: "signed", subject: "svc" } });
  // A bad token but a good key: the key wins.
  expect((await get("/mixed", { authorization: "Bearer nonsense", "x-partner-key": KEYS.json, "x-request-id": "mixed-key" })).status).toBe(200);
  expect(await proxy.logOf("mixed-key")).toMatchObject({ auth: { provider: "partners", subject: "json-client" } });
  const bad = await get("/mixed", { authorization: "Bearer nonsense", "x-api-key": "wrong" });
  expect(bad.status).toBe(401);
  expect(bad.headers.get("www-authenticate")).toBe('Bearer realm="switchyard", error="invalid_token", error_description="the token is malformed", ApiKey realm="switchyard"');
});

test("the access log never holds a key", async () => {
  const text = (await proxy.logLines()).map((l) => JSON.stringify(l)).join("\n");
  for (const key of Object.values(KEYS)) expect(text).not.toContain(key);
  expect(text).not.toContain(KEYS.acme.slice(0, -1));
});

test("bad key files and duplicate keys refuse the config with their place", () => {
  const config = (auth: string) => validateConfig("t.yaml", parseText("t.yaml", `listeners: [{port: 8080}]\nclusters: {a: {endpoints: ["127.0.0.1:1"]}}\nauth: ${auth}\nroutes: [{to: a, filters: [{type: auth, providers: [p]}]}]\n`));
  writeFileSync(dir.file("bad.yaml"), "- { name: x, sha256: not-a-hash }\n");
  expect(() => buildRuntime(config(`{p: {type: api_key, keys_file: ${dir.file("bad.yaml")}}}`), 1)).toThrow(`API key file ${dir.file("bad.yaml")}: [0].sha256: must be the 64 hex digits of a sha256`);
  expect(() => buildRuntime(config(`{p: {type: api_key, keys_file: ${join(dir.path, "missing.yaml")}}}`), 1)).toThrow("cannot read it (ENOENT)");
  const h = sha256Hex("same");
  expect(() => config(`{p: {type: api_key, keys: [{name: a, sha256: ${h}}, {name: b, sha256: ${h}}]}}`)).toThrow("auth.p.keys[1].sha256: the same key is listed twice");
  expect(() => config("{p: {type: api_key}}")).toThrow("auth.p.keys: give keys or keys_file");
});

test("switchyard hash-key prints the sha256 of a key given as an argument or on stdin", async () => {
  const cli = join(import.meta.dir, "../../src/cli.ts");
  const arg = Bun.spawnSync(["bun", cli, "hash-key", KEYS.acme]);
  expect(arg.stdout.toString().trim()).toBe(sha256Hex(KEYS.acme));
  const piped = Bun.spawnSync(["bun", cli, "hash-key"], { stdin: new TextEncoder().encode(`${KEYS.acme}\n`) });
  expect(piped.stdout.toString().trim()).toBe(sha256Hex(KEYS.acme));
  expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"); // FIPS 180-2 test vector
});
