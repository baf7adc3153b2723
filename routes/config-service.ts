/**
 * The control-plane API (switchyard.config.v1.ConfigService, src/proto/…/config.proto) on the admin
 * listener, with the Connect protocol over HTTP/1.1 (binary proto and JSON codecs; gRPC and
 * gRPC-web off). @connectrpc/connect's own router does the protocol: content types, size limit,
 * Connect errors with mapped statuses. Each push becomes a config document, is validated with the
 * config file's rules and put in force atomically (every worker), or answered with NACK and every
 * problem while the running config stays — a push that would change a part of the running config
 * no v1 message can express is one of them (src/config/push-coverage.ts).
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import { createFetchHandler } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { Hono } from "hono";
import { type ConfigIssue, ConfigError, configBaseDir, configDocument, validateLiteral } from "../src/config/load.ts";
import type { Config } from "../src/config/schema.ts";
import { droppedParts } from "../src/config/push-coverage.ts";
import { MAX_VERSION_INFO, snapshotDocument, unknownFields, withEndpoints, withSnapshot } from "../src/config/snapshot.ts";
import {
  ConfigService,
  EndpointSchema,
  GetConfigResponseSchema,
  type PushResponse,
  PushResponseSchema,
  SnapshotSchema,
} from "../src/gen/switchyard/config/v1/config_pb.ts";
import { metrics } from "../src/observe/metrics.ts";
import { SwitchyardError } from "../src/util/errors.ts";
import type { InstanceConfigState } from "../src/fleet/types.ts";
import { ConfigAnswer, type InstanceConfig, InstanceConfigSchema } from "../src/gen/switchyard/config/v1/config_pb.ts";
import type { FleetReader } from "./fleet.ts";
import type { ApplyConfig, RuntimeRef } from "../src/runtime/runtime-ref.ts";

/** Every RPC of the service is under this path: `/switchyard.config.v1.ConfigService/<Method>`. */
export const CONFIG_SERVICE_PATH = `/${ConfigService.typeName}/`;

/** Largest request message: gRPC's default (4 MiB) — thousands of routes and clusters. */
export const MAX_PUSH_BYTES = 4 * 1024 * 1024;

/** A Connect error outside the router (bearer token, unknown method): JSON `{code, message}` with its HTTP status. */
export function connectErrorResponse(code: Code, message: string, headers: Record<string, string> = {}): Response {
  return new Response(errorToJsonBytes(new ConnectError(message, code), {}), {
    status: codeToHttpStatus(code),
    headers: { "content-type": "application/json", ...headers },
  });
}

/**
 * connect-es reports an undecodable binary request as `internal` (its serializer serves clients
 * and servers alike); for a server that is the caller's mistake, `invalid_argument`, as the JSON
 * codec already answers.
 */
async function asClientError(res: Response): Promise<Response> {
  if (res.status !== 500) return res;
  const text = await res.text();
  const body = (() => {
    try {
      return JSON.parse(text) as { code?: unknown; message?: unknown };
    } catch {
      return {};
    }
  })();
  if (body.code === "internal" && typeof body.message === "string" && body.message.startsWith("parse binary:")) return connectErrorResponse(Code.InvalidArgument, body.message);
  return new Response(text, res);
}

export interface ConfigServiceOptions {
  runtime: RuntimeRef;
  applyConfig?: ApplyConfig;
  /** With a fleet: GetConfig lists its instances. */
  fleet?: () => FleetReader | undefined;
}

const ANSWERS = { pending: ConfigAnswer.PENDING, ack: ConfigAnswer.ACK, nack: ConfigAnswer.NACK } as const;

function instanceMessages(instances: readonly InstanceConfigState[]): InstanceConfig[] {
  return instances.map((i) => create(InstanceConfigSchema, {
    instance: i.instance, region: i.region ?? "", fleetVersion: BigInt(i.fleet_version), answer: ANSWERS[i.answer], message: i.message ?? "",
    version: BigInt(i.version ?? 0), runningFleetVersion: BigInt(i.running_fleet_version),
  }));
}

type Rpc = "PushSnapshot" | "UpdateEndpoints";

const nack = (runtime: RuntimeRef, rpc: Rpc, versionInfo: string, version: number, problems: ConfigIssue[], message: string): PushResponse => {
  metrics.pushes.inc([rpc, "rejected"]);
  runtime.noteChange(`config-service ${rpc}`, "refused", problems.map((p) => (p.path === undefined ? p.message : `${p.path}: ${p.message}`)));
  return create(PushResponseSchema, {
    accepted: false,
    version: BigInt(version),
    versionInfo,
    message,
    problems: problems.map((p) => ({ path: p.path ?? "(top level)", message: p.message })),
  });
};

function versionInfoProblems(versionInfo: string): ConfigIssue[] {
  if (versionInfo.length > MAX_VERSION_INFO) return [{ path: "version_info", message: `at most ${MAX_VERSION_INFO} characters (it labels a metric)` }];
  if (/[\u0000-\u001f\u007f]/.test(versionInfo)) return [{ path: "version_info", message: "no control characters" }];
  return [];
}

export function configServiceRoutes(options: ConfigServiceOptions): Hono {
  const { runtime } = options;

  /**
   * Validate → swap, or NACK. Runs synchronously up to the swap (the await is only the fan-out to
   * other workers), so two pushes never build on the same base.
   */
  const push = async (rpc: Rpc, versionInfo: string, problems: ConfigIssue[], document: Record<string, unknown> | undefined): Promise<PushResponse> => {
    const before = runtime.current.version;
    problems.push(...versionInfoProblems(versionInfo));
    let next: Config | undefined;
    if (document !== undefined) {
      try {
        // No file of its own: relative paths are the main config file's folder's, as the config in force.
        next = validateLiteral(`(${rpc})`, document, { baseDir: configBaseDir(runtime.current.config) });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems.push(...e.issues);
      }
    }
    if (problems.length > 0 || next === undefined) {
      return nack(runtime, rpc, versionInfo, before, problems, `refused: ${problems.length} problem${problems.length === 1 ? "" : "s"}; config version ${before} stays in force`);
    }
    if (!options.applyConfig) throw new ConnectError("config push is not enabled on this listener", Code.Unavailable);
    let applied: Awaited<ReturnType<ApplyConfig>>;
    try {
      applied = await options.applyConfig(next, `config-service ${rpc}`, versionInfo);
    } catch (e) {
      // A fleet that cannot take it now (Redis down, another push first): a Connect error to retry, not a NACK of the config.
      if (e instanceof SwitchyardError && e.code === "fleet_unavailable") throw new ConnectError(e.message, Code.Unavailable);
      if (e instanceof SwitchyardError && e.code === "fleet_config_conflict") throw new ConnectError(e.message, Code.Aborted);
      // Valid, yet its runtime could not be built (e.g. a file it names cannot be opened).
      return nack(runtime, rpc, versionInfo, before, [{ message: (e as Error).message }], `refused: the config could not be put in force; config version ${before} stays in force`);
    }
    metrics.pushes.inc([rpc, "accepted"]);
    return create(PushResponseSchema, {
      accepted: true,
      version: BigInt(applied.version),
      versionInfo,
      workers: applied.workers,
      message: applied.fleet === undefined ? `config version ${applied.version} in force` : `config version ${applied.version} in force; fleet config version ${applied.fleet.version}`,
      fleetVersion: BigInt(applied.fleet?.version ?? 0),
      instances: instanceMessages(applied.fleet?.instances ?? []),
    });
  };

  const router = createConnectRouter({
    connect: true,
    grpc: false, // needs HTTP/2 trailers, which Bun.serve does not give
    grpcWeb: false,
    readMaxBytes: MAX_PUSH_BYTES,
    // A misspelt field must not vanish silently (the config file's unknown keys are errors too);
    // answers spell out `"accepted": false` and the like rather than leaving defaults out.
    jsonOptions: { ignoreUnknownFields: false, alwaysEmitImplicit: true },
  });
  router.service(ConfigService, {
    pushSnapshot: (snapshot) => {
      const running = runtime.current.config;
      const pushed = snapshotDocument(snapshot);
      // Besides its own problems: parts of the running config it would change without saying so.
      const problems = [...unknownFields(SnapshotSchema, snapshot), ...droppedParts(running, pushed)];
      return push("PushSnapshot", snapshot.versionInfo, problems, withSnapshot(configDocument(running), pushed));
    },
    updateEndpoints: (request) => {
      const problems = request.endpoints.flatMap((e, i) => unknownFields(EndpointSchema, e, ["clusters", request.cluster, "endpoints", i]));
      const updated = withEndpoints(configDocument(runtime.current.config), request.cluster, request.endpoints);
      if ("problem" in updated) problems.push(updated.problem);
      return push("UpdateEndpoints", request.versionInfo, problems, "document" in updated ? updated.document : undefined);
    },
    getConfig: async () => {
      // With a fleet, every instance's answer too; a Redis that cannot say leaves them out (this instance's own part stands).
      const fleet = await options.fleet?.()?.configView().catch(() => undefined);
      return create(GetConfigResponseSchema, {
        version: BigInt(runtime.current.version),
        versionInfo: runtime.versionInfo ?? "",
        routes: runtime.current.routes.map((r) => r.name),
        clusters: [...runtime.current.clusters.keys()],
        fleetVersion: BigInt(fleet?.fleet_version ?? 0),
        instances: instanceMessages(fleet?.instances ?? []),
      });
    },
  });

  const app = new Hono();
  for (const handler of router.handlers) {
    const serve = createFetchHandler(handler, { httpVersion: "1.1" });
    app.all(handler.requestPath, async (c) => asClientError(await serve(c.req.raw)));
  }
  app.all(`${CONFIG_SERVICE_PATH}*`, (c) => connectErrorResponse(Code.Unimplemented, `${c.req.path.slice(1)} is not a method of ${ConfigService.typeName}`));
  return app;
}
