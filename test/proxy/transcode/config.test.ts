/** grpc_transcode config: every problem found at load, at its path, from the schema and the descriptor set. */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { ConfigError, validateConfig } from "../../../src/config/load.ts";
import { GREETER, GREETER_DESCRIPTORS } from "../../helpers/greeter.ts";
import { tempDir } from "../../helpers/tmp.ts";

const ROOT = `${import.meta.dir}/../../..`;

function problemsOf(transcode: Record<string, unknown>, route: Record<string, unknown> = {}): readonly string[] {
  try {
    validateConfig("t.yaml", {
      listeners: [{ port: 0 }],
      clusters: { g: { endpoints: ["http://127.0.0.1:1"] } },
      routes: [{ to: "g", grpc_transcode: { descriptors: GREETER_DESCRIPTORS, service: GREETER, ...transcode }, ...route }],
    }, {});
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems;
  }
}

describe("grpc_transcode config", () => {
  test("a valid one passes, with its defaults", () => {
    const config = validateConfig("t.yaml", {
      listeners: [{ port: 0 }],
      clusters: { g: { endpoints: ["http://127.0.0.1:1"] } },
      routes: [{ to: "g", grpc_transcode: { descriptors: GREETER_DESCRIPTORS, service: GREETER } }],
    }, {});
    expect(config.routes[0]!.grpc_transcode).toEqual({
      descriptors: GREETER_DESCRIPTORS, service: GREETER, protocol: "connect", use_proto_names: false, emit_defaults: false,
      ignore_unknown_query: false, max_body: 1024 * 1024, max_response: 4 * 1024 * 1024,
    });
  });

  test("the descriptor set: missing, not a descriptor set, built without its imports", () => {
    const dir = tempDir();
    try {
      expect(problemsOf({ descriptors: dir.file("none.binpb") })).toEqual([
        `routes[0].grpc_transcode.descriptors: cannot read the descriptor set ${dir.file("none.binpb")}: ENOENT`,
      ]);
      writeFileSync(dir.file("yaml.binpb"), "listeners:\n  - port: 80\n");
      expect(problemsOf({ descriptors: dir.file("yaml.binpb") })[0]).toStartWith(`routes[0].grpc_transcode.descriptors: ${dir.file("yaml.binpb")} is not a usable FileDescriptorSet (make one with \`buf build -o`);
      const run = Bun.spawnSync([`${ROOT}/node_modules/.bin/buf`, "build", `${ROOT}/test/fixtures/proto`, "--exclude-imports", "--path", `${ROOT}/test/fixtures/proto/switchyard`, "-o", dir.file("bare.binpb")]);
      expect(run.exitCode).toBe(0);
      expect(problemsOf({ descriptors: dir.file("bare.binpb") })[0]).toContain("Cannot find google/api/annotations.proto");
    } finally {
      dir.cleanup();
    }
  });

  test("the service, its methods and fields are checked against the descriptor set", () => {
    expect(problemsOf({ service: "switchyard.test.v1.Nope" })).toEqual([
      `routes[0].grpc_transcode.service: no service switchyard.test.v1.Nope in ${GREETER_DESCRIPTORS} (has: switchyard.test.v1.Greeter, switchyard.test.v1.Plain)`,
    ]);
    expect(problemsOf({
      methods: [
        { http: "POST /a", rpc: "Nope" },
        { http: "POST /b", rpc: "Watch" },
        { http: "GET /c/{nope}", rpc: "Greet" },
        { http: "GET /d/{tags}", rpc: "Greet" },
        { http: "POST /e", rpc: "Greet", body: "nope" },
        { http: "GET /f/**/g", rpc: "Greet" },
        { http: "GET /h/{name}/{name}", rpc: "Greet" },
        { http: "GET /i/{options.language}", rpc: "Greet" },
        { http: "GET /i/{options.language}", rpc: "Greet" },
        { http: "GET /j/{name.first}", rpc: "Greet" },
      ],
    })).toEqual([
      "routes[0].grpc_transcode.methods[0].rpc: switchyard.test.v1.Greeter has no method Nope (has: Greet, Lookup, Fail, Sleep, Watch)",
      "routes[0].grpc_transcode.methods[1]: Greeter.Watch is server-streaming; only unary methods can be transcoded",
      "routes[0].grpc_transcode.methods[2]: /c/{nope}: switchyard.test.v1.GreetRequest has no field nope",
      "routes[0].grpc_transcode.methods[3]: /d/{tags}: {tags} must name a singular scalar or enum field",
      "routes[0].grpc_transcode.methods[4]: switchyard.test.v1.GreetRequest has no field nope to take the body",
      'routes[0].grpc_transcode.methods[5]: "**" must be the last segment in /f/**/g',
      "routes[0].grpc_transcode.methods[6]: field name is bound twice in /h/{name}/{name}",
      "routes[0].grpc_transcode.methods[8]: GET /i/{options.language} is mapped twice",
      "routes[0].grpc_transcode.methods[9]: /j/{name.first}: name is not a message field, so name.first cannot go inside it",
    ]);
  });

  test("a service without google.api.http annotations needs methods", () => {
    expect(problemsOf({ service: "switchyard.test.v1.Plain" })).toEqual([
      "routes[0].grpc_transcode.methods: switchyard.test.v1.Plain has no google.api.http annotations: list the HTTP mappings under methods",
    ]);
    expect(problemsOf({ service: "switchyard.test.v1.Plain", methods: [{ http: "POST /ping", rpc: "Ping" }] })).toEqual([]);
  });

  test("schema errors: unknown keys, bad protocol, bad mapping syntax, conflicting route features", () => {
    expect(problemsOf({ protocol: "grpc", extra: 1, methods: [{ http: "post /x", rpc: "Greet" }] })).toEqual([
      'routes[0].grpc_transcode.protocol: Invalid option: expected one of "connect"|"grpc-web"',
      'routes[0].grpc_transcode.methods[0].http: must be "METHOD /path/template", e.g. "POST /v1/greet/{name}"',
      'routes[0].grpc_transcode: unknown key "extra"',
    ]);
    expect(problemsOf({}, { websocket: true, mirror: { cluster: "g" }, rewrite: { path_regex: { pattern: "a", substitution: "b" } } })).toEqual([
      "routes[0].mirror: cannot be combined with grpc_transcode",
      "routes[0].websocket: cannot be combined with grpc_transcode",
      "routes[0].rewrite: a grpc_transcode route calls /package.Service/Method: a path rewrite has nothing to rewrite",
    ]);
  });
});

describe("fixtures and docs", () => {
  test("test/fixtures/greeter.binpb is what `bun run proto:fixtures` builds from test/fixtures/proto", () => {
    const dir = tempDir();
    try {
      const run = Bun.spawnSync([`${ROOT}/node_modules/.bin/buf`, "build", `${ROOT}/test/fixtures/proto`, "-o", dir.file("fresh.binpb")], { cwd: ROOT });
      expect(run.exitCode).toBe(0);
      expect(Buffer.compare(readFileSync(dir.file("fresh.binpb")), readFileSync(GREETER_DESCRIPTORS))).toBe(0);
    } finally {
      dir.cleanup();
    }
  });

  test("the README's gRPC transcoding example is a valid config (with the fixture's descriptor set)", () => {
    const readme = readFileSync(`${ROOT}/README.md`, "utf8");
    const block = /### gRPC transcoding[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    const example = Bun.YAML.parse(block.replaceAll("greeter.binpb", GREETER_DESCRIPTORS)) as Record<string, unknown>;
    const config = validateConfig("README.md", { listeners: [{ port: 0 }], ...example }, {});
    expect(config.routes.map((r) => r.grpc_transcode?.protocol)).toEqual(["connect", "grpc-web"]);
  });
});
