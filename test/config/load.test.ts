/** Config loading: every kind of bad file is refused with its path and a clear reason; good ones become frozen, typed config. */
import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfigFile, parseText, validateConfig } from "../../src/config/load.ts";
import { writeTempConfig } from "../helpers/cli.ts";

const base = {
  listeners: [{ port: 8080 }],
  routes: [{ name: "r", match: { path: { prefix: "/" } }, to: "c" }],
  clusters: { c: { endpoints: ["http://127.0.0.1:9000"] } },
};

/** The problems validateConfig reports for `base` with `patch` applied. */
function problemsOf(raw: unknown, env: Record<string, string> = {}): string[] {
  try {
    validateConfig("test.yaml", raw, env);
  } catch (e) {
    if (e instanceof ConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

const withRoute = (route: Record<string, unknown>) => ({ ...base, routes: [{ to: "c", ...route }] });

describe("valid config", () => {
  test("the default switchyard.yaml validates into a frozen config with parsed durations and sizes", async () => {
    const config = await loadConfigFile("switchyard.yaml", {});
    expect(config.listeners[0]!.port).toBe(8080);
    expect(config.listeners[0]!.max_request_body).toBe(128 * 1024 * 1024);
    expect(config.routes[0]!.timeouts.request).toBe(60_000);
    expect(config.admin).toEqual({ address: "127.0.0.1", port: 9901 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.routes[0]!.match)).toBe(true);
  });

  test("${VAR} and ${VAR:-default} are substituted, also into numbers such as ports", () => {
    const config = validateConfig("t.yaml", { ...base, listeners: [{ port: "${PORT:-7000}" }], clusters: { c: { endpoints: ["http://${UP_HOST}:9000"] } } }, { UP_HOST: "10.0.0.5" });
    expect(config.listeners[0]!.port).toBe(7000);
    expect(config.clusters.c!.endpoints![0]).toBe("http://10.0.0.5:9000");
    expect(validateConfig("t.yaml", { ...base, listeners: [{ port: "${PORT:-7000}" }] }, { PORT: "7100" }).listeners[0]!.port).toBe(7100);
  });

  test("YAML and JSON files both load", async () => {
    const yaml = writeTempConfig("listeners:\n  - port: 8081\nroutes:\n  - to: c\nclusters:\n  c:\n    endpoints: [127.0.0.1:9000]\n", "s.yaml");
    const json = writeTempConfig(base, "s.json");
    try {
      expect((await loadConfigFile(yaml.file)).listeners[0]!.port).toBe(8081);
      expect((await loadConfigFile(json.file)).routes[0]!.to).toBe("c");
    } finally {
      yaml.cleanup();
      json.cleanup();
    }
  });
});

describe("each kind of error names its path", () => {
  const cases: [string, unknown, RegExp][] = [
    ["unknown top-level key", { ...base, listners: [] }, /^\(top level\): unknown key "listners"/],
    ["unknown nested key (a typo)", withRoute({ match: { pathh: { prefix: "/" } } }), /^routes\[0\]\.match: unknown key "pathh"/],
    ["bad duration", withRoute({ timeouts: { request: "5 seconds" } }), /^routes\[0\]\.timeouts\.request: "5 seconds" is not a duration/],
    ["bad size", { ...base, listeners: [{ port: 1, max_request_body: "lots" }] }, /^listeners\[0\]\.max_request_body: "lots" is not a size/],
    ["port out of range", { ...base, listeners: [{ port: 70000 }] }, /^listeners\[0\]\.port/],
    ["idle timeout over Bun's limit", { ...base, listeners: [{ port: 1, idle_timeout: "5m" }] }, /^listeners\[0\]\.idle_timeout: must be at most 255s/],
    ["invalid regex", withRoute({ match: { path: { regex: "([a-z" } } }), /^routes\[0\]\.match\.path\.regex: /],
    ["two path kinds", withRoute({ match: { path: { prefix: "/a", exact: "/a" } } }), /^routes\[0\]\.match\.path: give exactly one of exact, prefix or regex/],
    ["unknown cluster", withRoute({ to: "nope" }), /^routes\[0\]\.to: unknown cluster "nope" \(known: c\)/],
    ["duplicate route name", { ...base, routes: [{ name: "a", to: "c" }, { name: "a", to: "c" }] }, /^routes\[1\]\.name: duplicate route name \(also routes\[0\]\)/],
    ["port conflict", { ...base, admin: { address: "0.0.0.0", port: 8080 } }, /^admin\.port: port 8080 is already used by listeners\.0\.port/],
    ["bad endpoint", { ...base, clusters: { c: { endpoints: ["ftp://x:1"] } } }, /^clusters\.c\.endpoints\[0\]: "ftp:\/\/x:1" is not an endpoint/],
    ["endpoint with a path", { ...base, clusters: { c: { endpoints: ["http://x:1/api"] } } }, /^clusters\.c\.endpoints\[0\]/],
    ["no endpoints", { ...base, clusters: { c: { endpoints: [] } } }, /^clusters\.c\.endpoints: needs at least one endpoint/],
    ["unknown balancer", { ...base, clusters: { c: { endpoints: ["x:1"], balancer: { type: "random-ish" } } } }, /^clusters\.c\.balancer\.type/],
    ["rewrite prefix without prefix match", withRoute({ match: { path: { exact: "/a" } }, rewrite: { path_prefix: "/b" } }), /^routes\[0\]\.rewrite\.path_prefix: needs match\.path\.prefix/],
    ["lower-case method", withRoute({ match: { methods: ["get"] } }), /^routes\[0\]\.match\.methods\[0\]: must be an upper-case HTTP method/],
    ["bad host pattern", withRoute({ match: { hosts: ["*bad*.com"] } }), /^routes\[0\]\.match\.hosts\[0\]: must be a host name/],
    ["header condition with two kinds", withRoute({ match: { headers: [{ name: "x", exact: "1", present: true }] } }), /^routes\[0\]\.match\.headers\[0\]: give exactly one of exact, regex or present/],
    ["wrong type", withRoute({ websocket: "yes" }), /^routes\[0\]\.websocket: /],
    ["no listeners", { ...base, listeners: [] }, /^listeners: needs at least one listener/],
    ["missing required key", { ...base, routes: [{ match: {} }] }, /^routes\[0\]\.to: /],
    ["a duration longer than a timer can hold", withRoute({ timeouts: { request: "600h" } }), /^routes\[0\]\.timeouts\.request: "600h" is too long/],
    ["a zero health-check interval", { ...base, clusters: { c: { endpoints: ["x:1"], health_check: { path: "/h", interval: "0" } } } }, /^clusters\.c\.health_check\.interval: must be more than 0/],
    ["a zero breaker window", { ...base, clusters: { c: { endpoints: ["x:1"], breaker: { window: 0 } } } }, /^clusters\.c\.breaker\.window: must be more than 0/],
    ["two caches on one file", { ...base, caches: { a: { path: "x.db" }, b: { path: "x.db" } } }, /^caches\.b\.path: the file is already used by cache "a"/],
    ["a ring too large", { ...base, clusters: { c: { endpoints: [{ url: "x:1", weight: 1000 }], balancer: { type: "ring_hash", hash_on: { path: true }, points_per_weight: 10000 } } } }, /^clusters\.c\.balancer\.points_per_weight: the ring would have/],
    ["a header value with a line break", withRoute({ headers: { response: { set: { "x-a": "1\r\nSet-Cookie: x" } } } }), /^routes\[0\]\.headers\.response\.set\.x-a: must be a valid header value/],
  ];
  for (const [name, raw, expected] of cases) {
    test(name, () => {
      const problems = problemsOf(raw);
      expect(problems.length).toBeGreaterThan(0);
      expect(problems.some((p) => expected.test(p))).toBe(true);
    });
  }

  test("an unset environment variable without default is an error at its path", () => {
    expect(problemsOf({ ...base, clusters: { c: { endpoints: ["http://${UPSTREAM_HOST}:1"] } } })).toContain(
      "clusters.c.endpoints[0]: environment variable UPSTREAM_HOST is not set",
    );
  });

  test("every problem is reported at once, not just the first", () => {
    const problems = problemsOf({ ...base, listeners: [{ port: 1, idle_timeout: "x" }], routes: [{ to: "nope", timeouts: { request: "y" } }] });
    expect(problems.length).toBeGreaterThanOrEqual(3);
  });
});

describe("files", () => {
  test("a YAML syntax error, a JSON syntax error and a missing file are reported with the file name", async () => {
    const yaml = writeTempConfig("listeners:\n  - port: [8080\n", "bad.yaml");
    const json = writeTempConfig("{ \"listeners\": [", "bad.json");
    try {
      for (const file of [yaml.file, json.file, "/nonexistent/switchyard.yaml"]) {
        const error = await loadConfigFile(file).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).message).toStartWith(file);
      }
      const missing = (await loadConfigFile("/nonexistent/switchyard.yaml").catch((e: unknown) => e)) as ConfigError;
      expect(missing.problems[0]).toContain("ENOENT");
    } finally {
      yaml.cleanup();
      json.cleanup();
    }
  });

  test("${VAR} unquoted inside { … } or [ … ]: the problem says to quote it, with the file and line", async () => {
    const bad = writeTempConfig(
      [
        "listeners: [{ port: 8080 }]",
        "modules: { dir: ${MODULES_DIR} }",
        "routes: [{ to: c }]   # a comment with ${NOT_A_VALUE} in { braces }",
        "clusters:",
        "  c:",
        "    endpoints: [\"http://${UP}:80\", 'http://${UP}:81',",
        "                http://${UP}:82]",
        "",
      ].join("\n"),
      "flow.yaml",
    );
    try {
      const error = (await loadConfigFile(bad.file, { MODULES_DIR: "m", UP: "10.0.0.1" }).catch((e: unknown) => e)) as ConfigError;
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.problems).toEqual([
        `${bad.file}:2: \${MODULES_DIR} inside { … } must be quoted: "\${MODULES_DIR}"`,
        `${bad.file}:7: http://\${UP}:82 inside [ … ] must be quoted: "http://\${UP}:82"`,
      ]);
      expect(error.message).toStartWith(`${bad.file}: 2 problems`);
      // Quoted as the message says, the same file loads and the variables are substituted.
      const fixed = writeTempConfig((await Bun.file(bad.file).text()).replace("${MODULES_DIR} }", '"${MODULES_DIR}" }').replace("http://${UP}:82]", '"http://${UP}:82"]'), "fixed.yaml");
      try {
        const config = await loadConfigFile(fixed.file, { MODULES_DIR: "m", UP: "10.0.0.1" });
        expect(config.clusters.c!.endpoints!.map((e) => (typeof e === "string" ? e : e.url))).toEqual(["http://10.0.0.1:80", "http://10.0.0.1:81", "http://10.0.0.1:82"]);
      } finally {
        fixed.cleanup();
      }
    } finally {
      bad.cleanup();
    }
  });

  test("a file with an unquoted ${VAR} in { … } and another syntax error reports both", () => {
    const error = (() => {
      try {
        parseText("two.yaml", "a: [${X}]\nb: { c: d\n");
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error("parsed");
    })();
    expect(error.problems[0]).toBe('two.yaml:1: ${X} inside [ … ] must be quoted: "${X}"');
    expect(error.problems[1]).toStartWith("syntax error near line 2: ");
    expect(error.problems).toHaveLength(2);
  });

  test("an empty file is refused (no listeners), not accepted as an empty config", async () => {
    const empty = writeTempConfig("", "empty.yaml");
    try {
      const error = (await loadConfigFile(empty.file).catch((e: unknown) => e)) as ConfigError;
      expect(error).toBeInstanceOf(ConfigError);
    } finally {
      empty.cleanup();
    }
  });
});

describe("documentation", () => {
  test("the README's config reference is a valid config", async () => {
    const readme = await Bun.file(`${import.meta.dir}/../../README.md`).text();
    const block = /## Config reference, by example[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const config = validateConfig("README.md", Bun.YAML.parse(block), {}, { checkFiles: false }); // its TLS files are examples
    expect(config.routes.map((r) => r.name)).toEqual(["orders-v2", "payments", "checkout-canary", "profile", "bff", "live"]);
  });
});

test("__proto__ as a key is refused at its path instead of vanishing (JSON and YAML)", () => {
  const docs = [
    parseText("p.json", '{"listeners":[{"port":8080}],"clusters":{"__proto__":{"endpoints":["127.0.0.1:1"]}},"routes":[{"to":"__proto__"}]}'),
    parseText("p.yaml", "listeners: [{port: 8080}]\nclusters:\n  __proto__: {endpoints: ['127.0.0.1:1']}\nroutes: [{to: __proto__}]\n"),
  ];
  for (const doc of docs) {
    try {
      validateConfig("p", doc);
      throw new Error("accepted");
    } catch (e) {
      expect((e as ConfigError).problems).toContain('clusters: "__proto__" is not allowed as a key');
    }
  }
});
