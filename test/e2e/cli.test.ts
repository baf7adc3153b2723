/** The CLI as a user runs it: validate, schema, usage. */
import { expect, test } from "bun:test";
import { CLI, ROOT, writeTempConfig } from "../helpers/cli.ts";

function run(...args: string[]) {
  const p = Bun.spawnSync([process.execPath, CLI, ...args], { cwd: ROOT, env: { ...process.env, PORT: "" } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

test("validate: exit 0 and ok on a good file", () => {
  const r = run("validate", "switchyard.yaml");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("switchyard.yaml: ok");
});

test("validate: exit 1 and every problem with its path on a bad file", () => {
  const bad = writeTempConfig(
    "listeners:\n  - port: 99999\n    idle_timeout: forever\nroutes:\n  - to: missing\n    match: { pathh: {} }\nclusters: {}\n",
    "bad.yaml",
  );
  try {
    const r = run("validate", bad.file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad.file}: 4 problems`);
    expect(r.stderr).toContain("listeners[0].port");
    expect(r.stderr).toContain('listeners[0].idle_timeout: "forever" is not a duration');
    expect(r.stderr).toContain('routes[0].match: unknown key "pathh"');
    expect(r.stderr).toContain('routes[0].to: unknown cluster "missing"');
  } finally {
    bad.cleanup();
  }
});

test("validate: a missing file is exit 1 with a clear message", () => {
  const r = run("validate", "/nonexistent.yaml");
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("/nonexistent.yaml: 1 problem");
});

test("schema: prints the JSON Schema that switchyard.schema.json holds", async () => {
  const r = run("schema");
  expect(r.code).toBe(0);
  const schema = JSON.parse(r.stdout) as { properties: Record<string, unknown>; additionalProperties?: boolean };
  expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(["listeners", "routes", "clusters", "admin", "access_log"]));
  expect(schema.additionalProperties).toBe(false);
  // The committed copy the default config points editors at must be current.
  expect(JSON.parse(await Bun.file(`${ROOT}/switchyard.schema.json`).text())).toEqual(schema);
});

test("an unknown command prints usage and exits 2", () => {
  const r = run("frobnicate");
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("usage:");
});

test("validate --explain shows the route and cluster a request would hit", () => {
  const r = run("validate", "switchyard.yaml", "--explain", "GET", "http://localhost:8080/echo/x?y=1");
  expect(r.code).toBe(0);
  const explained = JSON.parse(r.stdout.slice(r.stdout.indexOf("{"))) as Record<string, unknown>;
  expect(explained).toMatchObject({ route: "echo", cluster: "echo", upstream_path: "/echo/x?y=1", websocket: true });
  expect(run("validate", "switchyard.yaml", "--explain", "not-a-url").code).toBe(2);
});
