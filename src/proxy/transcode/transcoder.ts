/**
 * A route's gRPC transcoder, built once per runtime: `prepare` turns the client's HTTP/JSON request
 * into an RPC call (phase 2, after the filters); forward.ts sends the call and hands the upstream's
 * reply to `call.reply`, which makes the client's JSON answer (success or mapped gRPC error).
 */
import { fromBinary, type JsonWriteOptions, toJson } from "@bufbuild/protobuf";
import type { RoutedContext, RpcCall, Transcoder } from "../context.ts";
import { errors, SwitchyardError } from "../../util/errors.ts";
import { readBounded } from "../../util/read-bounded.ts";
import { readWithinRouteTime } from "../request-body.ts";
import { type Binding, compileBindings } from "./bindings.ts";
import { connectProtocol } from "./connect.ts";
import { grpcWebProtocol } from "./grpc-web.ts";
import { encodeRequest } from "./request.ts";
import type { GrpcTranscode } from "./schema.ts";
import { rpcErrorResponse } from "./status.ts";
import { malformed, type WireProtocol } from "./wire.ts";

const PROTOCOLS = { connect: connectProtocol, "grpc-web": grpcWebProtocol } satisfies Record<GrpcTranscode["protocol"], WireProtocol>;

/** Client headers that must not reach the upstream as they are: the body's framing and the protocols' own. */
const REQUEST_DROP = ["content-length", "content-type", "content-encoding", "accept-encoding", "accept", "te", "x-grpc-web"];
const PROTOCOL_HEADER = /^(grpc-|connect-|trailer-)/;
/** Upstream reply headers that describe the protocol, not the answer: not passed to the JSON client. */
const REPLY_DROP = ["content-type", "content-length", "content-encoding", "transfer-encoding", "accept-encoding"];

export function buildTranscoder(config: GrpcTranscode): Transcoder {
  const compiled = compileBindings(config);
  // The schema ran the same checks; a file that changed since then fails the (re)load here.
  if ("problems" in compiled) throw new Error(`grpc_transcode: ${compiled.problems.map((p) => p.message).join("; ")}`);
  const { registry, bindings } = compiled;
  const protocol = PROTOCOLS[config.protocol];
  const jsonOptions: Partial<JsonWriteOptions> = { registry, useProtoFieldName: config.use_proto_names, alwaysEmitImplicit: config.emit_defaults };

  function findBinding(method: string, path: string): { binding: Binding; values: Record<string, string> } | SwitchyardError {
    const allowed: string[] = [];
    for (const binding of bindings) {
      let values: Record<string, string> | undefined;
      try {
        values = binding.template.match(path);
      } catch {
        return errors.badRequest("the path has a malformed percent-escape");
      }
      if (values === undefined) continue;
      if (binding.verb === method) return { binding, values };
      allowed.push(binding.verb);
    }
    if (allowed.length > 0) {
      return new SwitchyardError({
        code: "method_not_allowed", status: 405, source: "client", message: `${path} takes ${allowed.join(", ")}`, headers: { allow: allowed.join(", ") },
      });
    }
    return new SwitchyardError({ code: "no_rpc", status: 404, source: "client", message: `no RPC of ${config.service} is mapped to ${method} ${path}` });
  }

  function makeCall(binding: Binding, body: ArrayBuffer): RpcCall {
    const output = binding.rpc.output;
    return {
      path: `/${binding.rpc.parent.typeName}/${binding.rpc.name}`,
      body,
      headers(forwarded, timeoutMs) {
        for (const name of REQUEST_DROP) forwarded.delete(name);
        for (const name of [...forwarded.keys()]) if (PROTOCOL_HEADER.test(name)) forwarded.delete(name);
        protocol.setHeaders(forwarded, timeoutMs);
        return forwarded;
      },
      async reply(ctx, response) {
        const result = await protocol.readReply(response, config.max_response);
        const headers = new Headers();
        for (const [name, value] of response.headers) {
          if (!REPLY_DROP.includes(name) && !PROTOCOL_HEADER.test(name)) headers.append(name, value);
        }
        if (!result.ok) return rpcErrorResponse(ctx, result.code, result.message, headers);
        let json: string;
        try {
          json = JSON.stringify(toJson(output, fromBinary(output, result.message), jsonOptions));
        } catch (e) {
          throw malformed("upstream_bad_response", `the upstream's reply is not a valid ${output.typeName}: ${(e as Error).message}`);
        }
        headers.set("content-type", "application/json");
        return new Response(json, { status: 200, headers });
      },
    };
  }

  return {
    async prepare(ctx) {
      const found = findBinding(ctx.method, ctx.path);
      if (found instanceof SwitchyardError) return found;
      const body = await readJsonBody(ctx, config.max_body);
      if (body instanceof SwitchyardError) return body;
      const message = encodeRequest(found.binding, { pathValues: found.values, query: ctx.query, body }, { registry, ignoreUnknownQuery: config.ignore_unknown_query });
      if (message instanceof SwitchyardError) return message;
      const framed = protocol.requestBody(message);
      return makeCall(found.binding, framed.buffer.slice(framed.byteOffset, framed.byteOffset + framed.byteLength) as ArrayBuffer);
    },
  };
}

/** The JSON request body, whole: up to `max` bytes (413 beyond), JSON or untyped (415 otherwise), within the route's time. */
async function readJsonBody(ctx: RoutedContext, max: number): Promise<Uint8Array | SwitchyardError> {
  const request = ctx.request;
  if (request.body === null) return new Uint8Array(0);
  const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "" && type !== "application/json" && !type.endsWith("+json")) {
    return new SwitchyardError({ code: "unsupported_media_type", status: 415, source: "client", message: `the request body must be application/json, not ${type}` });
  }
  const tooLarge = () => errors.tooLarge(`the JSON request body may be at most ${max} bytes (grpc_transcode.max_body)`);
  // A transform filter before this may have read (and mapped) the body already.
  const mapped = ctx.requestBody;
  if (mapped instanceof ArrayBuffer) return mapped.byteLength > max ? tooLarge() : new Uint8Array(mapped);
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > max && mapped === undefined) return tooLarge();
  const bytes = await readWithinRouteTime(ctx, () => readBounded(mapped ?? request.body!, max));
  return bytes === undefined ? tooLarge() : bytes;
}
