/**
 * `bun run gen`: regenerates src/gen/ (protobuf-es) from
 * - the official OpenTelemetry protocol definitions (OTLP trace export), taken from the pinned npm
 *   package that ships them (@opentelemetry/otlp-grpc-exporter-base 0.38.0 carries
 *   opentelemetry-proto with scope_spans, wire-compatible with current collectors): the
 *   machines we build on reach the npm registry but not GitHub or the Buf registry;
 * - our own .proto files under src/proto/ (the config-push API, …).
 * Uses the buf CLI and protoc-gen-es from devDependencies; no network.
 * `bun src/proto/generate.ts DIR` writes DIR/src/gen instead (a test compares it with the committed tree).
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dir, "..", "..");
/** Where src/gen goes: the repository itself, or the directory given. */
const outRoot = process.argv[2] ?? root;
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const template = join(root, "src", "proto", "buf.gen.yaml");
const otelProtos = join(root, "node_modules", "@opentelemetry", "otlp-grpc-exporter-base", "build", "protos");
/** The OTLP files we use, with the files they import (buf generates only the paths named). */
const otelFiles = ["collector/trace/v1/trace_service.proto", "trace/v1/trace.proto", "common/v1/common.proto", "resource/v1/resource.proto"].map((f) => `opentelemetry/proto/${f}`);

function buf(input: string, paths: string[]): void {
  const args = [bin("buf"), "generate", input, "--template", template, "--output", outRoot, ...paths.flatMap((p) => ["--path", join(input, p)])];
  const run = Bun.spawnSync(args, { cwd: root, stdout: "inherit", stderr: "inherit", env: { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH}` } });
  if (run.exitCode !== 0) throw new Error(`buf generate ${relative(root, input)} failed (exit ${run.exitCode})`);
}

function protoFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".proto"));
}

if (!existsSync(otelProtos)) throw new Error(`missing ${relative(root, otelProtos)}: run bun install first`);
rmSync(join(outRoot, "src", "gen"), { recursive: true, force: true });
buf(otelProtos, otelFiles);
const ours = protoFiles(join(root, "src", "proto"));
if (ours.length > 0) buf(join(root, "src", "proto"), ours);
console.log(`generated src/gen from ${otelFiles.length} OTLP and ${ours.length} own .proto files`);
