/**
 * Which HTTP request calls which RPC: explicit `methods` mappings, or the service's google.api.http
 * annotations, checked against the descriptor set (the service, unary methods, fields) once at load.
 */
import { type DescField, type DescMethod, type DescService, type FileRegistry, getExtension, hasExtension, toJson } from "@bufbuild/protobuf";
import { loadDescriptorSet, resolveFieldPath } from "./descriptors.ts";
import type { GrpcTranscode } from "./schema.ts";
import { compileTemplate, type PathTemplate } from "./template.ts";

export interface Binding {
  /** The HTTP method. */
  readonly verb: string;
  readonly template: PathTemplate;
  readonly rpc: DescMethod;
  /** Where the JSON body goes: the whole message, one top-level field, or nowhere (no body allowed). */
  readonly body: "*" | DescField | undefined;
  /** The path's variables with the fields they set. */
  readonly pathFields: readonly { readonly variable: string; readonly chain: readonly DescField[] }[];
}

export interface CompiledService {
  readonly registry: FileRegistry;
  readonly service: DescService;
  readonly bindings: readonly Binding[];
}

export interface Problem {
  readonly path: (string | number)[];
  readonly message: string;
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);

/** The part of google.api.HttpRule read here, as protobuf JSON. */
interface HttpRuleJson {
  get?: string; put?: string; post?: string; delete?: string; patch?: string;
  custom?: { kind?: string; path?: string };
  body?: string;
  responseBody?: string;
  additionalBindings?: HttpRuleJson[];
}

export function compileBindings(config: Pick<GrpcTranscode, "descriptors" | "service" | "methods">): CompiledService | { problems: Problem[] } {
  let registry: FileRegistry;
  try {
    registry = loadDescriptorSet(config.descriptors);
  } catch (e) {
    return { problems: [{ path: ["descriptors"], message: (e as Error).message }] };
  }
  const service = registry.getService(config.service);
  if (service === undefined) {
    const known = [...registry].filter((d) => d.kind === "service").map((d) => d.typeName);
    return { problems: [{ path: ["service"], message: `no service ${config.service} in ${config.descriptors}${known.length ? ` (has: ${known.join(", ")})` : " (it has no services)"}` }] };
  }
  const problems: Problem[] = [];
  const bindings: Binding[] = [];
  const add = (verb: string, path: string, body: string | undefined, rpc: DescMethod, at: (string | number)[]) => {
    const made = makeBinding(verb, path, body, rpc);
    if (typeof made === "string") problems.push({ path: at, message: made });
    else if (bindings.some((b) => b.verb === verb && b.template.source === path)) problems.push({ path: at, message: `${verb} ${path} is mapped twice` });
    else bindings.push(made);
  };
  if (config.methods !== undefined) {
    config.methods.forEach((m, i) => {
      const rpc = service.methods.find((x) => x.name === m.rpc);
      if (rpc === undefined) {
        problems.push({ path: ["methods", i, "rpc"], message: `${service.typeName} has no method ${m.rpc} (has: ${service.methods.map((x) => x.name).join(", ")})` });
        return;
      }
      const space = m.http.indexOf(" ");
      const verb = m.http.slice(0, space);
      add(verb, m.http.slice(space + 1), m.body ?? (BODY_METHODS.has(verb) ? "*" : undefined), rpc, ["methods", i]);
    });
  } else {
    for (const rule of annotations(registry, service)) {
      const { rpc, json } = rule;
      const at = ["service"];
      if (json.responseBody) {
        problems.push({ path: at, message: `${rpc.parent.name}.${rpc.name}: google.api.http response_body is not supported; map it under methods instead` });
        continue;
      }
      const pattern = rulePattern(json);
      if (pattern === undefined) problems.push({ path: at, message: `${rpc.parent.name}.${rpc.name}: a google.api.http rule without a method and path` });
      else add(pattern.verb, pattern.path, json.body || undefined, rpc, at);
    }
    if (bindings.length === 0 && problems.length === 0) {
      problems.push({ path: ["methods"], message: `${service.typeName} has no google.api.http annotations: list the HTTP mappings under methods` });
    }
  }
  return problems.length > 0 ? { problems } : { registry, service, bindings };
}

/** The google.api.http rules of the service's methods (each binding and its additional ones), if the set carries that extension. */
function annotations(registry: FileRegistry, service: DescService): { rpc: DescMethod; json: HttpRuleJson }[] {
  const http = registry.getExtension("google.api.http");
  if (http === undefined) return [];
  const out: { rpc: DescMethod; json: HttpRuleJson }[] = [];
  for (const rpc of service.methods) {
    const options = rpc.proto.options;
    if (options === undefined || !hasExtension(options, http)) continue;
    const rule = toJson(http.message!, getExtension(options, http) as never, { registry }) as HttpRuleJson;
    out.push({ rpc, json: rule });
    for (const extra of rule.additionalBindings ?? []) out.push({ rpc, json: { ...extra, body: extra.body } });
  }
  return out;
}

function rulePattern(rule: HttpRuleJson): { verb: string; path: string } | undefined {
  for (const verb of ["get", "put", "post", "delete", "patch"] as const) {
    const path = rule[verb];
    if (path) return { verb: verb.toUpperCase(), path };
  }
  if (rule.custom?.kind && rule.custom.path) return { verb: rule.custom.kind.toUpperCase(), path: rule.custom.path };
  return undefined;
}

/** A binding, or why `verb path` cannot call `rpc`. */
function makeBinding(verb: string, path: string, body: string | undefined, rpc: DescMethod): Binding | string {
  const name = `${rpc.parent.name}.${rpc.name}`;
  if (rpc.methodKind !== "unary") return `${name} is ${rpc.methodKind.replace("_", "-")}; only unary methods can be transcoded`;
  let template: PathTemplate;
  try {
    template = compileTemplate(path);
  } catch (e) {
    return (e as Error).message;
  }
  const pathFields: Binding["pathFields"][number][] = [];
  for (const variable of template.variables) {
    const chain = resolveFieldPath(rpc.input, variable);
    if (typeof chain === "string") return `${path}: ${chain}`;
    const leaf = chain.at(-1)!;
    if (leaf.fieldKind !== "scalar" && leaf.fieldKind !== "enum") return `${path}: {${variable}} must name a singular scalar or enum field`;
    pathFields.push({ variable, chain });
  }
  let bodyField: Binding["body"];
  if (body === "*") bodyField = "*";
  else if (body !== undefined && body !== "") {
    bodyField = rpc.input.fields.find((f) => f.name === body || f.jsonName === body);
    if (bodyField === undefined) return `${rpc.input.typeName} has no field ${body} to take the body`;
  }
  return { verb, template, rpc, body: bodyField, pathFields };
}
