/** The fleet's config: the README's block states the defaults, and bad values are refused with their paths. */
import { expect, test } from "bun:test";
import { ConfigError, validateConfig } from "../../src/config/load.ts";

const base = { listeners: [{ port: 8080 }] };
const env = { REDIS_URL: "rediss://default:secret@example.upstash.io:6379" };

test("the README's fleet block is valid and says exactly the defaults", async () => {
  const readme = await Bun.file(`${import.meta.dir}/../../README.md`).text();
  const block = /## Running a fleet[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
  const documented = validateConfig("README.md", { ...base, ...(Bun.YAML.parse(block) as object) }, env, { baseDir: "/srv" });
  const defaults = validateConfig("minimal.yaml", { ...base, fleet: { redis: { url: "${REDIS_URL}" } } }, env, { baseDir: "/srv" });
  expect(documented.fleet).toEqual(defaults.fleet!);
  expect(defaults.fleet).toMatchObject({
    redis: { timeout: 250, retry_interval: 1000, key_prefix: "switchyard:fleet:" }, heartbeat: { interval: 1000, ttl: 5000 }, state_path: "/srv/switchyard-fleet.json",
    idempotency: { on_failure: "local", max_answer: 1024 * 1024 }, purge: { ack_timeout: 1000, on_redis_failure: "serve", on_log_lost: "clear", log_max: 100_000 }, config: { ack_timeout: 1000 },
  });
});

test("bad fleet settings are refused with their paths", () => {
  const problems = (fleet: unknown, routes: unknown[] = []) => {
    try {
      validateConfig("f.yaml", { ...base, fleet, routes, clusters: { c: { endpoints: ["127.0.0.1:1"] } } }, {});
      return [];
    } catch (e) {
      return (e as ConfigError).problems;
    }
  };
  expect(problems({ redis: { url: "http://nope" } })).toEqual(["fleet.redis.url: must be a redis:// (or rediss://, redis+unix://) URL"]);
  expect(problems({ redis: { url: "redis://r:6379", timeout: "600ms" } })).toEqual(["fleet.purge.ack_timeout: must be more than redis.timeout + 500ms"]);
  expect(problems({ redis: { url: "redis://r:6379" }, heartbeat: { interval: "1s", ttl: "1500ms" } })).toEqual(["fleet.heartbeat.ttl: must be at least twice heartbeat.interval (one lost heartbeat must not drop an instance)"]);
  expect(problems({ redis: { url: "redis://r:6379" }, purge: { on_redis_failure: "ignore" } })[0]).toStartWith("fleet.purge.on_redis_failure:");
  expect(problems(undefined, [{ to: "c", fly_replay: { region: "Amsterdam" } }])).toEqual(["routes[0].fly_replay.region: must be a Fly.io region code such as ams or iad"]);
  expect(problems(undefined, [{ to: "c", fly_replay: { region: "ams", methods: ["post"] } }])).toEqual(["routes[0].fly_replay.methods[0]: must be an upper-case HTTP method"]);
});
