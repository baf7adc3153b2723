/**
 * Relative paths in the config are relative to the config file's folder, not to the working
 * directory: the CLI started elsewhere finds its modules, certificates, cache and log files beside
 * its config, and writes nothing where it was started. A config pushed through PUT /config (no
 * file) resolves them against the main config file's folder.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { makePki, type TestPki } from "../helpers/certs.ts";
import { type ProxyProcess, ROOT, spawnProxy } from "../helpers/cli.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { startUpstream, type Upstream } from "../helpers/upstream.ts";

const HONO = Bun.resolveSync("hono", ROOT);

let upstream: Upstream;
let pki: TestPki;
let configDir: ReturnType<typeof tempDir>;
let cwd: ReturnType<typeof tempDir>;
let proxy: ProxyProcess;

function moduleSource(answer: string): string {
  return `import { Hono } from ${JSON.stringify(HONO)};\nexport default new Hono().get("*", (c) => c.text(${JSON.stringify(answer)}));\n`;
}

/** Every path in it is relative. */
function configYaml(modulesDir: string): string {
  return `listeners:
  - address: 127.0.0.1
    port: 0
    tls: { certificates: [{ cert: certs/server.pem, key: ./certs/server.key }] }
admin: { address: 127.0.0.1, port: 0 }
modules: { dir: ${modulesDir} }
caches: { main: { path: cache.db } }
routes:
  - { name: hello, match: { path: { prefix: /hello } }, module: hello }
  - { name: cached, to: up, cache: { name: main } }
clusters: { up: { endpoints: ["${upstream.origin}"] } }
access_log: { path: access.log }
`;
}

beforeAll(async () => {
  upstream = startUpstream(() => new Response("from upstream", { headers: { "cache-control": "max-age=60" } }));
  pki = makePki();
  const server = pki.issue("server", { subject: "/CN=localhost", dns: ["localhost"], ips: ["127.0.0.1"], usage: "server" });
  configDir = tempDir("switchyard-conf-");
  cwd = tempDir("switchyard-cwd-");
  mkdirSync(configDir.file("certs"));
  writeFileSync(configDir.file("certs/server.pem"), server.certPem);
  writeFileSync(configDir.file("certs/server.key"), server.keyPem);
  for (const [dir, answer] of [["modules", "hello from modules/"], ["other-modules", "hello from other-modules/"]] as const) {
    mkdirSync(configDir.file(dir));
    writeFileSync(join(configDir.file(dir), "hello.ts"), moduleSource(answer));
  }
  writeFileSync(configDir.file("cfg.yaml"), configYaml("modules"));
  // The config file itself is named relative to the working directory, as any command-line path.
  proxy = await spawnProxy(relative(cwd.path, configDir.file("cfg.yaml")), {}, cwd.path);
}, 20_000);

afterAll(async () => {
  await proxy?.stop();
  upstream.stop(true);
  pki.cleanup();
  configDir.cleanup();
  cwd.cleanup();
});

const get = (path: string) => fetch(`https://127.0.0.1:${proxy.port}${path}`, { tls: { ca: pki.ca.certPem } });

test("started from another directory: the module, the certificate and key, the cache and log files are the config folder's", async () => {
  const hello = await get("/hello/x");
  expect(hello.status).toBe(200);
  expect(await hello.text()).toBe("hello from modules/");
  const cached = await get("/cached");
  expect(await cached.text()).toBe("from upstream");
  await waitFor("the cache file beside the config", () => existsSync(configDir.file("cache.db")));
  await waitFor("access log lines beside the config", async () => existsSync(configDir.file("access.log")) && (await Bun.file(configDir.file("access.log")).text()).includes('"route":"cached"'));
  expect(readdirSync(cwd.path)).toEqual([]); // nothing written where it was started
});

test("PUT /config (no file of its own): relative paths are the main config file's folder's", async () => {
  const res = await fetch(`${proxy.adminOrigin}/config`, { method: "PUT", headers: { "content-type": "application/yaml" }, body: configYaml("other-modules") });
  const answer = (await res.json()) as Record<string, unknown>;
  expect(res.status).toBe(200);
  expect(answer.relative_paths_from).toBe(configDir.path);
  expect(await (await get("/hello/x")).text()).toBe("hello from other-modules/");
  expect(readdirSync(cwd.path)).toEqual([]);
});
