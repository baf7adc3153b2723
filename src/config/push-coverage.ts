/**
 * What a v1 push cannot express, and the guard that keeps a push from changing it silently.
 *
 * Every key of the file's route and cluster has a v1 field (`keysWithoutField()`, held at [] by a
 * test), but a message cannot carry every value the file can: proto3 cannot tell an empty list
 * from an unset one, and an integer field has a range. A running route or cluster holding such a
 * value would be changed by a push that mirrors it — silently, as route filters were before v1
 * carried them. So each running route and cluster is turned into its closest v1 message and back
 * (`inexpressible`); where the validated result differs, that part is out of a push's reach. A
 * push whose route or cluster of the same name leaves such a part at that closest value is refused
 * with the part's path (`droppedParts`); one that sets it to something else, or drops the whole
 * route or cluster, says what it means and goes through.
 *
 * A key the file gains without a v1 field is caught twice: by the test, and here at run time (the
 * closest message has nothing there, so the push of a route using it is refused, not ACKed).
 */
import { type DescEnum, type DescField, type DescMessage, fromJson, type JsonValue, ScalarType } from "@bufbuild/protobuf";
import { z } from "zod";
import { ClusterSchema as ClusterDesc, RouteSchema as RouteDesc } from "../gen/switchyard/config/v1/config_pb.ts";
import { RouteSchema } from "../proxy/route-schema.ts";
import { ClusterSchema } from "../upstream/cluster-schema.ts";
import { type ConfigIssue, configDocument, formatPath } from "./load.ts";
import type { Config } from "./schema.ts";
import { clusterDocument, routeDocument, type SnapshotDocument, v1FieldName, v1Spelling } from "./snapshot.ts";

type Doc = Record<string, unknown>;
const isDoc = (v: unknown): v is Doc => v !== null && typeof v === "object" && !Array.isArray(v);

/** Messages whose value is JSON in the config's shape (any key, checked by zod, not by the message). */
const isJsonType = (desc: DescMessage): boolean => desc.typeName.startsWith("google.protobuf.");

/** One part of a running route or cluster that no v1 message can say. */
export interface Gap {
  /** Inside the route or cluster: ["health_check", "expected_statuses"]; [] for the whole of it. */
  readonly path: readonly PropertyKey[];
  /** Its validated value in the running config. */
  readonly running: unknown;
  /** The validated value the closest v1 message gives there (undefined: unset), or NO_MESSAGE. */
  readonly closest: unknown;
}

/** `Gap.closest` of a route or cluster no v1 message can hold at all: every push of its name changes it. */
export const NO_MESSAGE: unique symbol = Symbol("no v1 message");

/** Running routes (by name, `route-<index>` when unnamed) and clusters (by name) with their gaps; only those that have some. */
export interface Gaps {
  readonly routes: ReadonlyMap<string, readonly Gap[]>;
  readonly clusters: ReadonlyMap<string, readonly Gap[]>;
}

// ---- the closest v1 message of a config object ----

const INT_RANGE: Partial<Record<ScalarType, readonly [number, number]>> = {
  [ScalarType.INT32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.SINT32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.SFIXED32]: [-(2 ** 31), 2 ** 31 - 1],
  [ScalarType.UINT32]: [0, 2 ** 32 - 1],
  [ScalarType.FIXED32]: [0, 2 ** 32 - 1],
  [ScalarType.INT64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [ScalarType.SINT64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [ScalarType.SFIXED64]: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  [ScalarType.UINT64]: [0, Number.MAX_SAFE_INTEGER],
  [ScalarType.FIXED64]: [0, Number.MAX_SAFE_INTEGER],
};

/** A config value as the proto JSON of a scalar field, or undefined when the field cannot hold it. */
function scalarJson(type: ScalarType, value: unknown): JsonValue | undefined {
  if (type === ScalarType.STRING) return typeof value === "string" ? value : typeof value === "number" || typeof value === "boolean" ? String(value) : undefined;
  if (type === ScalarType.BOOL) return typeof value === "boolean" ? value : undefined;
  if (type === ScalarType.DOUBLE || type === ScalarType.FLOAT) return typeof value === "number" && Number.isFinite(value) ? value : undefined;
  const range = INT_RANGE[type];
  if (range === undefined || typeof value !== "number" || !Number.isInteger(value)) return undefined;
  return value >= range[0] && value <= range[1] ? value : undefined;
}

function messageJson(desc: DescMessage, value: unknown): JsonValue | undefined {
  if (isJsonType(desc)) return value as JsonValue; // Struct, ListValue: fromJson checks the kind of JSON
  return isDoc(value) ? closestJson(desc, value) : undefined;
}

const enumJson = (desc: DescEnum, value: unknown): JsonValue | undefined => (typeof value === "string" && desc.values.some((v) => v.name === value) ? value : undefined);

/** The proto JSON of one value of `field` (of one element, for a list or map), or undefined when the field cannot hold it. */
function elementJson(field: DescField, value: unknown): JsonValue | undefined {
  switch (field.fieldKind) {
    case "message":
      return messageJson(field.message, value);
    case "enum":
      return enumJson(field.enum, value);
    case "scalar":
      return scalarJson(field.scalar, value);
    case "list":
      return field.listKind === "message" ? messageJson(field.message, value) : field.listKind === "enum" ? enumJson(field.enum, value) : scalarJson(field.scalar, value);
    case "map":
      return field.mapKind === "message" ? messageJson(field.message, value) : field.mapKind === "enum" ? enumJson(field.enum, value) : scalarJson(field.scalar, value);
  }
}

/** Leaves out whatever the message cannot hold: a key without a field, a value out of its field's range. */
function closestJson(desc: DescMessage, config: Doc): { [k: string]: JsonValue } {
  const doc = v1Spelling(desc.typeName, config);
  const out: { [k: string]: JsonValue } = {};
  for (const field of desc.fields) {
    if (!Object.hasOwn(doc, field.name)) continue;
    const value = doc[field.name];
    let json: JsonValue | undefined;
    if (field.fieldKind === "list") {
      json = Array.isArray(value) ? value.map((v) => elementJson(field, v)).filter((v) => v !== undefined) : undefined;
    } else if (field.fieldKind === "map") {
      json = isDoc(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, elementJson(field, v)]).filter(([, v]) => v !== undefined)) : undefined;
    } else {
      json = elementJson(field, value);
    }
    if (json !== undefined) out[field.name] = json;
  }
  return out;
}

// ---- where the closest message means something else ----

/** Paths where two validated values differ (the deepest object key or array that does). */
function differences(running: unknown, closest: unknown, path: PropertyKey[], out: Gap[]): void {
  if (isDoc(running) && isDoc(closest)) {
    for (const key of new Set([...Object.keys(running), ...Object.keys(closest)])) differences(running[key], closest[key], [...path, key], out);
  } else if (Array.isArray(running) && Array.isArray(closest) && running.length === closest.length) {
    running.forEach((v, i) => differences(v, closest[i], [...path, i], out));
  } else if (!Bun.deepEquals(running, closest)) {
    out.push({ path, running, closest });
  }
}

interface Kind {
  desc: DescMessage;
  schema: z.ZodType;
  back(json: { [k: string]: JsonValue }): Doc;
  /** One spelling for what the file may say two ways with one meaning, before comparing. */
  same(validated: unknown): unknown;
}
const ROUTE: Kind = { desc: RouteDesc, schema: RouteSchema, back: (json) => routeDocument(fromJson(RouteDesc, json)), same: (r) => r };
const CLUSTER: Kind = {
  desc: ClusterDesc,
  schema: ClusterSchema,
  back: (json) => clusterDocument(fromJson(ClusterDesc, json)),
  // `host:port` is `{url: host:port, weight: 1}` (v1 has only the second form).
  same: (c) => (isDoc(c) && Array.isArray(c.endpoints) ? { ...c, endpoints: c.endpoints.map((e: unknown) => (typeof e === "string" ? { url: e, weight: 1 } : e)) } : c),
};

/** The gaps of one running route or cluster document (valid, as in force). */
function gapsOf(kind: Kind, config: Doc): Gap[] {
  const running = kind.schema.safeParse(config);
  if (!running.success) return [];
  let closest: ReturnType<typeof kind.schema.safeParse>;
  try {
    closest = kind.schema.safeParse(kind.back(closestJson(kind.desc, config)));
  } catch {
    // A Struct part that is not JSON, say: no message of this type decodes it.
    return [{ path: [], running: running.data, closest: NO_MESSAGE }];
  }
  // Its closest form is invalid: a push that mirrors it is refused by validation, not silently changed.
  if (!closest.success) return [];
  const out: Gap[] = [];
  differences(kind.same(running.data), kind.same(closest.data), [], out);
  return out;
}

const cache = new WeakMap<Config, Gaps>();

/** What no v1 push can say of the running config's routes and clusters (computed once per config in force). */
export function inexpressible(config: Config): Gaps {
  const known = cache.get(config);
  if (known !== undefined) return known;
  const doc = configDocument(config);
  const routes = new Map<string, Gap[]>();
  (Array.isArray(doc.routes) ? doc.routes : []).forEach((r: unknown, i) => {
    if (!isDoc(r)) return;
    const gaps = gapsOf(ROUTE, r);
    const name = typeof r.name === "string" ? r.name : `route-${i}`;
    if (gaps.length > 0 && !routes.has(name)) routes.set(name, gaps);
  });
  const clusters = new Map<string, Gap[]>();
  for (const [name, c] of Object.entries(isDoc(doc.clusters) ? doc.clusters : {})) {
    const gaps = isDoc(c) ? gapsOf(CLUSTER, c) : [];
    if (gaps.length > 0) clusters.set(name, gaps);
  }
  const gaps: Gaps = { routes, clusters };
  cache.set(config, gaps);
  return gaps;
}

const shown = (v: unknown): string => (v === undefined ? "unset" : JSON.stringify(v));

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let at = value;
  for (const key of path) at = at !== null && typeof at === "object" ? (at as Record<PropertyKey, unknown>)[key] : undefined;
  return at;
}

function check(kind: Kind, pushed: unknown, gaps: readonly Gap[] | undefined, where: PropertyKey[], out: ConfigIssue[]): void {
  if (gaps === undefined) return;
  const parsed = kind.schema.safeParse(pushed);
  if (!parsed.success) return; // its own problems are reported by validation
  const value = kind.same(parsed.data);
  for (const gap of gaps) {
    if (gap.closest === NO_MESSAGE) {
      out.push({ path: formatPath(where), message: "the running config has this, and no v1 message can express it: a push of it would change it. Change it with the config file or PUT /config first" });
      continue;
    }
    if (!Bun.deepEquals(valueAt(value, gap.path), gap.closest)) continue;
    out.push({
      path: formatPath([...where, ...gap.path]),
      message: `the running config has ${shown(gap.running)} here, which a v1 push cannot express; this push would change it to ${shown(gap.closest)}. Change it with the config file or PUT /config first`,
    });
  }
}

/**
 * A snapshot's routes and clusters that would silently change an inexpressible part of the
 * running ones of the same name: one problem per part, at its path in the snapshot.
 */
export function droppedParts(running: Config, pushed: SnapshotDocument): ConfigIssue[] {
  const gaps = inexpressible(running);
  const out: ConfigIssue[] = [];
  if (gaps.routes.size === 0 && gaps.clusters.size === 0) return out;
  pushed.routes.forEach((r, j) => {
    if (isDoc(r)) check(ROUTE, r, gaps.routes.get(typeof r.name === "string" ? r.name : `route-${j}`), ["routes", j], out);
  });
  for (const [name, c] of Object.entries(pushed.clusters)) check(CLUSTER, c, gaps.clusters.get(name), ["clusters", name], out);
  return out;
}

// ---- the file's keys against v1's fields ----

interface JsonSchemaNode {
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  additionalProperties?: JsonSchemaNode | boolean;
  anyOf?: JsonSchemaNode[];
  oneOf?: JsonSchemaNode[];
  allOf?: JsonSchemaNode[];
  $ref?: string;
  $defs?: Record<string, JsonSchemaNode>;
}

/** The object shapes a node may take (through unions and references). */
function objectShapes(node: JsonSchemaNode | undefined, root: JsonSchemaNode): JsonSchemaNode[] {
  if (node === undefined) return [];
  if (node.$ref?.startsWith("#/$defs/")) return objectShapes(root.$defs?.[node.$ref.slice("#/$defs/".length)], root);
  const branches = [...(node.anyOf ?? []), ...(node.oneOf ?? []), ...(node.allOf ?? [])].flatMap((b) => objectShapes(b, root));
  return node.properties !== undefined ? [node, ...branches] : branches;
}

function missingKeys(node: JsonSchemaNode, desc: DescMessage, path: string, root: JsonSchemaNode, out: Set<string>): void {
  for (const shape of objectShapes(node, root)) {
    for (const [key, sub] of Object.entries(shape.properties ?? {})) {
      const field = desc.fields.find((f) => f.name === v1FieldName(desc.typeName, key));
      if (field === undefined) {
        out.add(`${path}.${key}`);
        continue;
      }
      const message = field.fieldKind === "message" || field.fieldKind === "list" || field.fieldKind === "map" ? field.message : undefined;
      if (message === undefined || isJsonType(message)) continue;
      const element = field.fieldKind === "list" ? sub.items : field.fieldKind === "map" ? sub.additionalProperties : sub;
      const suffix = field.fieldKind === "list" ? "[]" : field.fieldKind === "map" ? ".*" : "";
      if (typeof element === "object") missingKeys(element, message, `${path}.${key}${suffix}`, root, out);
    }
  }
}

/**
 * Keys of the file's route and cluster schema (nested ones included) that no v1 field carries:
 * `routes[].x`, `clusters.*.health_check.y`. Empty while the .proto keeps up with the file.
 */
export function keysWithoutField(): string[] {
  const out = new Set<string>();
  for (const [schema, desc, path] of [[RouteSchema, RouteDesc, "routes[]"], [ClusterSchema, ClusterDesc, "clusters.*"]] as const) {
    const root = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as unknown as JsonSchemaNode;
    missingKeys(root, desc, path, root, out);
  }
  return [...out];
}
