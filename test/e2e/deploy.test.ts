/** fly.toml, the Dockerfile and the default config agree: ports, check paths, signals, regions. */
import { expect, test } from "bun:test";
import { configFromText, loadConfigFile } from "../../src/config/load.ts";
import { ROOT } from "../helpers/cli.ts";

interface FlyToml {
  primary_region: string;
  processes?: Record<string, string>;
  kill_signal: string;
  kill_timeout: string;
  env: Record<string, string>;
  http_service: {
    processes?: string[];
    internal_port: number;
    concurrency: { type: string; soft_limit: number; hard_limit: number };
    checks: { path: string; method: string }[];
  };
  checks?: Record<string, { port: number; path: string; type: string }>;
}

const fly = Bun.TOML.parse(await Bun.file(`${ROOT}/fly.toml`).text()) as unknown as FlyToml;
// As Fly runs it: PORT from fly.toml's [env].
const config = await loadConfigFile(`${ROOT}/switchyard.yaml`, { ...process.env, ...fly.env });
const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)![1]);

test("the http_service port is a listener of the default config, and that listener answers health checks", () => {
  const listener = config.listeners.find((l) => l.port === fly.http_service.internal_port);
  expect(listener).toBeDefined();
  expect(listener!.address).toBe("0.0.0.0"); // Fly's proxy reaches the machine on its private address
  expect(listener!.health_checks).toBe(true);
});

test("the checks use the readiness and liveness paths Switchyard serves, on a served port", () => {
  const paths = fly.http_service.checks.map((c) => c.path);
  expect(paths).toContain("/readyz");
  for (const check of Object.values(fly.checks ?? {})) {
    expect(["/healthz", "/readyz"]).toContain(check.path);
    expect(config.listeners.some((l) => l.port === check.port && l.health_checks)).toBe(true);
  }
});

test("concurrency limits are set, soft below hard", () => {
  const c = fly.http_service.concurrency;
  expect(c.type).toBe("requests");
  expect(c.soft_limit).toBeGreaterThan(0);
  expect(c.hard_limit).toBeGreaterThan(c.soft_limit);
});

test("a primary region plus at least one more", () => {
  const regions = fly.env.DEPLOY_REGIONS!.split(",");
  expect(regions[0]).toBe(fly.primary_region);
  expect(new Set(regions).size).toBeGreaterThanOrEqual(2);
});

test("Fly stops with SIGTERM (which drains) and waits longer than the drain timeout", () => {
  expect(fly.kill_signal).toBe("SIGTERM");
  expect(seconds(fly.kill_timeout) * 1000).toBeGreaterThan(config.shutdown.drain_timeout);
});

test("the Dockerfile builds on the official Bun image and starts the default config", async () => {
  const dockerfile = await Bun.file(`${ROOT}/Dockerfile`).text();
  expect(dockerfile).toMatch(/^FROM oven\/bun:/m);
  expect(dockerfile).toContain('CMD ["bun", "src/cli.ts", "start", "switchyard.yaml"]');
  expect(dockerfile).toContain(`EXPOSE ${fly.http_service.internal_port}`);
});

test("fly.toml runs the fleet config: the image carries it, its listeners and checks are the default config's, its Redis URL is a secret", async () => {
  const command = fly.processes?.app;
  expect(command).toBe("bun src/cli.ts start switchyard.fleet.yaml");
  expect(fly.http_service.processes).toEqual(["app"]);
  expect(await Bun.file(`${ROOT}/Dockerfile`).text()).toMatch(/^COPY .*switchyard\.fleet\.yaml/m);
  const text = await Bun.file(`${ROOT}/switchyard.fleet.yaml`).text();
  expect(text).toContain("url: ${REDIS_URL}"); // from `fly secrets set REDIS_URL=…`, never in the file
  // As Fly runs it: fly.toml's [env], the secret, and what Fly sets on every machine.
  const fleetConfig = await loadConfigFile(`${ROOT}/switchyard.fleet.yaml`, {
    ...process.env, ...fly.env, REDIS_URL: "rediss://default:secret@example.upstash.io:6379", PRIMARY_REGION: fly.primary_region, FLY_REGION: "iad",
  });
  expect(fleetConfig.fleet?.redis.url).toBe("rediss://default:secret@example.upstash.io:6379");
  expect(fleetConfig.fleet?.state_path).toBe(`${fly.env.SWITCHYARD_DATA}/switchyard-fleet.json`);
  expect(fleetConfig.listeners).toEqual(config.listeners);
  expect(fleetConfig.routes.find((r) => r.fly_replay !== undefined)?.fly_replay?.region).toBe(fly.primary_region);
  expect(fleetConfig.shutdown.drain_timeout).toBeLessThan(seconds(fly.kill_timeout) * 1000);
});

test("gRPC on Fly: fly.toml's commented h2_backend and switchyard.yaml's commented protocols, uncommented, go together", async () => {
  const uncomment = (text: string, line: RegExp) => text.split("\n").map((l) => (line.test(l) ? l.replace(/^(\s*)# /, "$1") : l)).join("\n");
  const flyText = uncomment(uncomment(await Bun.file(`${ROOT}/fly.toml`).text(), /^# \[http_service\.http_options\]$/), /^# h2_backend = true$/);
  const withH2 = Bun.TOML.parse(flyText) as unknown as { http_service: { http_options: { h2_backend: boolean } } };
  expect(withH2.http_service.http_options.h2_backend).toBe(true);
  const yaml = uncomment(await Bun.file(`${ROOT}/switchyard.yaml`).text(), /^\s*# protocols: \[http1, http2\]$/);
  const h2 = configFromText(`${ROOT}/switchyard.yaml`, yaml, { ...process.env, ...fly.env });
  const listener = h2.listeners.find((l) => l.port === fly.http_service.internal_port)!;
  expect(listener.protocols).toEqual(["http1", "http2"]);
});
