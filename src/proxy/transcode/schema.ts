/** Config of a route's `grpc_transcode`: HTTP/JSON in, a unary RPC upstream (Connect or gRPC-Web). */
import { z } from "zod";
import { FilePathSchema } from "../../config/file-path.ts";
import { SizeSchema } from "../../config/primitives.ts";

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const RpcMappingSchema = z.strictObject({
  /** `METHOD /path/template`, the template in google.api.http syntax: `{field}`, `{field=prefix/*}`, `*`, `**`, `:verb`. */
  http: z.string().regex(/^[A-Z]+ \/\S*$/, 'must be "METHOD /path/template", e.g. "POST /v1/greet/{name}"'),
  /** The method of `service` this maps to (unary only), e.g. `Greet`. */
  rpc: z.string().regex(IDENT, "must be a method name of the service, e.g. Greet"),
  /**
   * Where the JSON body goes: `*` the whole request message, a top-level field name, or `""` no body.
   * Default `*` for POST, PUT and PATCH, no body for the others. Fields not set by the path or the
   * body may be set by query parameters (`?user.id=7&tags=a&tags=b`).
   */
  body: z.string().regex(/^(\*|[A-Za-z_][A-Za-z0-9_]*)?$/, 'must be "*", a field name or ""').optional(),
});

export const GrpcTranscodeSchema = z
  .strictObject({
    /** A FileDescriptorSet with the service and everything it imports: `buf build -o api.binpb`; relative to the config file's folder. Read at load and on every reload. */
    descriptors: FilePathSchema,
    /** The fully qualified service name, e.g. `acme.greeter.v1.Greeter`. */
    service: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, "must be a fully qualified service name, e.g. acme.greeter.v1.Greeter"),
    /** The upstream's protocol: `connect` (unary POST, application/proto) or `grpc-web` (framed, trailers in the body; HTTP/1.1). Default connect. */
    protocol: z.enum(["connect", "grpc-web"]).default("connect"),
    /** HTTP → RPC mappings, tried in order. When absent, the service's google.api.http annotations are used. */
    methods: z.array(RpcMappingSchema).min(1).optional(),
    /** Reply JSON with the .proto field names (`big_number`) instead of lowerCamelCase (`bigNumber`). Requests accept both. Default false. */
    use_proto_names: z.boolean().default(false),
    /** Reply JSON includes fields at their default values (0, "", false, []). Default false. */
    emit_defaults: z.boolean().default(false),
    /** Query parameters that name no field are ignored instead of refused with 400. Default false. */
    ignore_unknown_query: z.boolean().default(false),
    /** Largest JSON request body; larger gets 413. Default 1MiB. */
    max_body: SizeSchema.prefault("1MiB"),
    /** Largest upstream reply; larger gets 502. Default 4MiB. */
    max_response: SizeSchema.prefault("4MiB"),
  })
  // The descriptor set is read here too, so `switchyard validate` names a missing service, method or
  // field at its path in the config instead of failing later at start. The binding compiler (and
  // protobuf with it) is loaded only for a config that has a transcoded route: the schema stays a
  // leaf that loads nothing of the proxy.
  .superRefine((config, ctx) => {
    const { compileBindings } = require("./bindings.ts") as { compileBindings: CompileBindings };
    const compiled = compileBindings(config);
    if ("problems" in compiled) for (const p of compiled.problems) ctx.addIssue({ code: "custom", path: p.path, message: p.message });
  });

export type GrpcTranscode = z.infer<typeof GrpcTranscodeSchema>;

/** bindings.ts's compiler as the schema sees it (its problems, at paths inside `grpc_transcode`). */
type CompileBindings = (config: Pick<GrpcTranscode, "descriptors" | "service" | "methods">) => object | { problems: { path: (string | number)[]; message: string }[] };
