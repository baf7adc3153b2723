/**
 * Pushed protobuf (switchyard.config.v1) → the config file's shape. The messages mirror the
 * config's keys, so their proto-named JSON form is the config document; only the balancer type
 * (an enum) and endpoints (`address` → `url`) need translating. The parts carried as
 * google.protobuf.Struct (filters, cache, discovery, tls …) are already the file's objects. The
 * result is validated by the caller with the same zod rules as a file, which reports problems
 * with the config's paths.
 */
import { type DescMessage, type Message, toJson } from "@bufbuild/protobuf";
import {
  BalancerSchema,
  BalancerTypeSchema,
  type Cluster,
  ClusterSchema,
  type Endpoint,
  EndpointSchema,
  type Route,
  RouteSchema,
  type Snapshot,
} from "../gen/switchyard/config/v1/config_pb.ts";
import { type ConfigIssue, formatPath } from "./load.ts";

type Doc = Record<string, unknown>;

/** A snapshot's `routes` and `clusters` in the config's shape. */
export interface SnapshotDocument {
  routes: unknown[];
  clusters: Doc;
}

/** version_info becomes a metric label: kept short so one series stays one small series. */
export const MAX_VERSION_INFO = 128;

const isDoc = (v: unknown): v is Doc => v !== null && typeof v === "object" && !Array.isArray(v);

/** `BALANCER_TYPE_RING_HASH` → `ring_hash`; unset → the default; an unknown number is kept, for zod to refuse. */
function balancerType(json: unknown): unknown {
  if (json === undefined) return "round_robin";
  const value = BalancerTypeSchema.values.find((v) => v.name === json);
  if (value === undefined || value.number === 0) return value === undefined ? json : "round_robin";
  return value.localName.toLowerCase();
}

function endpointsDocument(endpoints: unknown): unknown {
  if (!Array.isArray(endpoints)) return endpoints;
  return endpoints.map((e: Doc) => {
    const { address, ...rest } = e;
    return { url: address ?? "", ...rest };
  });
}

/** One pushed route in the config's shape. */
export function routeDocument(route: Route): Doc {
  return toJson(RouteSchema, route, { useProtoFieldName: true }) as Doc;
}

/** One pushed cluster in the config's shape. */
export function clusterDocument(cluster: Cluster): Doc {
  const out = toJson(ClusterSchema, cluster, { useProtoFieldName: true }) as Doc;
  if (out.endpoints !== undefined) out.endpoints = endpointsDocument(out.endpoints);
  if (isDoc(out.balancer)) out.balancer = { ...out.balancer, type: balancerType(out.balancer.type) };
  return out;
}

/** The `routes` and `clusters` of a snapshot, in the config's shape. */
export function snapshotDocument(snapshot: Snapshot): SnapshotDocument {
  const clusters: Doc = Object.create(null) as Doc;
  for (const [name, c] of Object.entries(snapshot.clusters)) clusters[name] = clusterDocument(c);
  return { routes: snapshot.routes.map(routeDocument), clusters };
}

/** A config document with its routes and clusters replaced by the snapshot's; everything else kept. */
export function withSnapshot(base: Doc, pushed: SnapshotDocument): Doc {
  return { ...base, ...pushed };
}

/**
 * The other way, for the config's few keys that v1 spells differently: a config object of the
 * message `typeName` with them in v1's terms (an endpoint's `url` as `address`, a string endpoint
 * as `{address}`, the balancer type as its enum name). What push-coverage.ts turns back into
 * messages to find what a push cannot express.
 */
export function v1Spelling(typeName: string, doc: Doc): Doc {
  if (typeName === ClusterSchema.typeName && Array.isArray(doc.endpoints)) {
    return { ...doc, endpoints: doc.endpoints.map((e: unknown) => (typeof e === "string" ? { address: e } : isDoc(e) ? v1Spelling(EndpointSchema.typeName, e) : e)) };
  }
  if (typeName === EndpointSchema.typeName && "url" in doc) {
    const { url, ...rest } = doc;
    return { address: url, ...rest };
  }
  if (typeName === BalancerSchema.typeName && typeof doc.type === "string") {
    const value = BalancerTypeSchema.values.find((v) => v.number !== 0 && v.localName.toLowerCase() === doc.type);
    return { ...doc, type: value?.name ?? doc.type };
  }
  return doc;
}

/** A config key's v1 field name in the message `typeName` (the same name but for an endpoint's url). */
export const v1FieldName = (typeName: string, key: string): string => (typeName === EndpointSchema.typeName && key === "url" ? "address" : key);

/** A config document with one cluster's endpoints replaced, or the problem when there is no such cluster. */
export function withEndpoints(base: Doc, cluster: string, endpoints: readonly Endpoint[]): { document: Doc } | { problem: ConfigIssue } {
  const clusters = isDoc(base.clusters) ? base.clusters : {};
  const current = Object.hasOwn(clusters, cluster) ? clusters[cluster] : undefined;
  if (!isDoc(current)) {
    const known = Object.keys(clusters);
    return { problem: { path: formatPath(["clusters", cluster]), message: `unknown cluster "${cluster}"${known.length ? ` (known: ${known.join(", ")})` : " (no clusters are defined)"}` } };
  }
  const list = endpoints.map((e) => toJson(EndpointSchema, e, { useProtoFieldName: true }));
  return { document: { ...base, clusters: { ...clusters, [cluster]: { ...current, endpoints: endpointsDocument(list) } } } };
}

/**
 * Fields this proxy does not know (a newer control plane): the binary codec keeps them aside
 * rather than failing, so they are reported here — a setting silently dropped could be a security
 * setting. `path` is in the config's terms.
 */
export function unknownFields(desc: DescMessage, message: Message, path: PropertyKey[] = [], out: ConfigIssue[] = []): ConfigIssue[] {
  for (const u of message.$unknown ?? []) {
    out.push({ path: formatPath(path), message: `unknown field number ${u.no} (not in ${desc.typeName} as this proxy knows it)` });
  }
  const fields = message as unknown as Record<string, unknown>;
  for (const field of desc.fields) {
    if (field.oneof !== undefined) continue; // our oneofs hold scalars only
    // Struct, ListValue: JSON in the config's shape (Struct is a plain object here), checked by zod.
    if ((field.fieldKind === "message" || field.fieldKind === "list" || field.fieldKind === "map") && field.message?.typeName.startsWith("google.protobuf.")) continue;
    const value = fields[field.localName];
    if (field.fieldKind === "message" && value !== undefined) unknownFields(field.message, value as Message, [...path, field.name], out);
    else if (field.fieldKind === "list" && field.listKind === "message") {
      (value as Message[]).forEach((m, i) => unknownFields(field.message, m, [...path, field.name, i], out));
    } else if (field.fieldKind === "map" && field.mapKind === "message") {
      for (const [k, m] of Object.entries(value as Record<string, Message>)) unknownFields(field.message, m, [...path, field.name, k], out);
    }
  }
  return out;
}
