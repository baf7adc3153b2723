/**
 * Start-up loads only what the config uses (cold start on Fly.io machines that start on the first
 * request): the built-in default config loads no protobuf, Connect, JWT or libSQL code; a config
 * that uses them does. Checked in a fresh process, from the modules it has loaded.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { writeTempConfig } from "../helpers/cli.ts";
import { freePort } from "../helpers/upstream.ts";

const ROOT = join(import.meta.dir, "../..");
const HEAVY = ["@bufbuild/protobuf", "@connectrpc/connect", "jose", "@libsql/client"];

/** The packages loaded by a process that starts `config` and answers one request through it. */
async function packagesLoaded(configFile: string, env: Record<string, string>, path: string): Promise<string[]> {
  const port = env.PORT!;
  const script = `
    const { start } = await import(${JSON.stringify(join(ROOT, "src/main.ts"))});
    const running = await start(${JSON.stringify(configFile)});
    await (await fetch("http://127.0.0.1:${port}${path}")).arrayBuffer();
    const names = new Set(Object.keys(require.cache).map((k) => k.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/)?.[1]).filter(Boolean));
    console.log(JSON.stringify([...names]));
    await running.shutdown();
    process.exit(0);`;
  const proc = Bun.spawn([process.execPath, "-e", script], { cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (!out.trim()) throw new Error(`the process printed nothing; stderr: ${err.slice(-2000)}`);
  await proc.exited;
  // The list is the one line that is a JSON array (access log lines, JSON objects, may come after it).
  const list = out.split("\n").find((line) => line.startsWith("["));
  if (list === undefined) throw new Error(`no package list in the output: ${out.slice(-2000)}`);
  return JSON.parse(list) as string[];
}

test("the default config loads none of protobuf, Connect, JWT or libSQL", async () => {
  const port = String(freePort());
  const loaded = await packagesLoaded(join(ROOT, "switchyard.yaml"), { PORT: port, ADMIN_PORT: String(freePort()), ECHO_PORT: String(freePort()) }, "/echo");
  expect(loaded).toContain("zod");
  expect(loaded.filter((p) => HEAVY.includes(p))).toEqual([]);
});

test("a config with a cache and a JWT provider loads libSQL and jose (and still no protobuf)", async () => {
  const port = freePort();
  const echo = freePort();
  const dir = writeTempConfig({
    listeners: [{ address: "127.0.0.1", port }],
    echo: { address: "127.0.0.1", port: echo },
    clusters: { echo: { endpoints: [`http://127.0.0.1:${echo}`] } },
    auth: { idp: { type: "jwt", keys: [{ secret: "a-shared-secret-of-32-bytes-or-more!!" }] } },
    caches: { c: {} },
    routes: [{ match: { path: { prefix: "/" } }, to: "echo", cache: { name: "c" }, filters: [{ type: "auth", providers: ["idp"], optional: true }] }],
    access_log: { enabled: false },
  });
  try {
    const loaded = await packagesLoaded(dir.file, { PORT: String(port) }, "/x");
    expect(loaded).toContain("jose");
    expect(loaded).toContain("@libsql/client");
    expect(loaded).not.toContain("@bufbuild/protobuf");
  } finally {
    dir.cleanup();
  }
}, 20_000);
