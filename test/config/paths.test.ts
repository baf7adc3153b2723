/** Relative paths in the config are the config file's folder's (config/file-path.ts), for every path field, defaults included. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { configBaseDir, configDocument, validateConfig, validateLiteral } from "../../src/config/load.ts";
import { GREETER } from "../helpers/greeter.ts";

const FIXTURES = join(import.meta.dir, "../fixtures");
const FILE = join(FIXTURES, "switchyard.yaml"); // never read: its folder is what counts

/** Every path field of the config, each relative. */
const relative = {
  listeners: [{
    port: 0,
    tls: { certificates: [{ cert: "tls/server.pem", key: "./tls/server.key" }], client_auth: { mode: "require", ca: "tls/clients-ca.pem" } },
  }],
  modules: { dir: "modules" },
  caches: { main: { path: "state/cache.db" }, other: {} },
  auth: {
    jwt: { type: "jwt", issuer: "https://login.example.com/", keys: [{ file: "keys/jwks.json" }] },
    keys: { type: "api_key", keys_file: "../secrets/api-keys.yaml" },
  },
  clusters: {
    up: { endpoints: ["https://10.0.0.1:443"], tls: { ca: "tls/ca.pem", cert: "tls/client.pem", key: "tls/client.key" } },
    found: { discovery: { type: "file", path: "endpoints.yaml" } },
    greeter: { endpoints: ["http://10.0.0.2:80"] },
  },
  routes: [
    { name: "idem", to: "up", idempotency: { path: "state/idempotency.db" }, cache: { name: "main" } },
    { name: "idem-default", to: "up", idempotency: {} },
    { name: "rpc", to: "greeter", grpc_transcode: { descriptors: "greeter.binpb", service: GREETER } },
  ],
  access_log: { path: "logs/access.log" },
};

const at = (...parts: string[]) => join(FIXTURES, ...parts);

test("every path field, given or defaulted, becomes absolute against the config file's folder", () => {
  const config = validateConfig(FILE, relative, {}, { checkFiles: false });
  const listenerTls = config.listeners[0]!.tls!;
  expect(listenerTls.certificates[0]).toMatchObject({ cert: at("tls/server.pem"), key: at("tls/server.key") });
  expect(listenerTls.client_auth!.ca).toBe(at("tls/clients-ca.pem"));
  expect(config.modules!.dir).toBe(at("modules"));
  expect(config.caches.main!.path).toBe(at("state/cache.db"));
  expect(config.caches.other!.path).toBe(at("switchyard-cache.db"));
  expect(config.auth.jwt).toMatchObject({ keys: [{ file: at("keys/jwks.json") }] });
  expect(config.auth.keys).toMatchObject({ keys_file: join(FIXTURES, "../secrets/api-keys.yaml") });
  expect(config.clusters.up!.tls).toMatchObject({ ca: at("tls/ca.pem"), cert: at("tls/client.pem"), key: at("tls/client.key") });
  expect(config.clusters.found!.discovery).toMatchObject({ path: at("endpoints.yaml") });
  expect(config.routes[0]!.idempotency!.path).toBe(at("state/idempotency.db"));
  expect(config.routes[1]!.idempotency!.path).toBe(at("switchyard-state.db"));
  expect(config.routes[2]!.grpc_transcode!.descriptors).toBe(at("greeter.binpb")); // read (and found) inside the schema
  expect(config.access_log.path).toBe(at("logs/access.log"));
  expect(configBaseDir(config)).toBe(FIXTURES);
});

test("absolute paths stay as they are; stdout and stderr are not files", () => {
  const config = validateConfig(FILE, { listeners: [{ port: 0 }], modules: { dir: "/srv/modules" }, access_log: { path: "stderr" } }, {});
  expect(config.modules!.dir).toBe("/srv/modules");
  expect(config.access_log.path).toBe("stderr");
  expect(validateConfig(FILE, { listeners: [{ port: 0 }] }, {}).access_log.path).toBe("stdout");
});

test("a pushed config (no file) resolves against the folder it is given: the main config file's", () => {
  const base = validateConfig(FILE, relative, {}, { checkFiles: false });
  const pushed = validateLiteral("(push)", configDocument(base), { baseDir: configBaseDir(base), checkFiles: false });
  expect(pushed).toEqual(base);
  expect(configBaseDir(pushed)).toBe(FIXTURES);
  // The document keeps what was written, so a push built on it resolves the same way again.
  expect((configDocument(pushed).modules as { dir: string }).dir).toBe("modules");
});

test("a path that leads nowhere is reported with the absolute path it was resolved to", () => {
  expect(() => validateConfig(FILE, { listeners: [{ port: 0, tls: { certificates: [{ cert: "nope.pem", key: "nope.key" }] } }] }, {}))
    .toThrow(`listeners[0].tls.certificates[0].cert: cannot read ${at("nope.pem")}: ENOENT`);
});
