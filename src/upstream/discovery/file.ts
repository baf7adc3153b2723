/** File discovery: `endpoints: [...]` in a JSON or YAML file, validated like the config's own list. */
import { z } from "zod";
import { parseText } from "../../config/load.ts";
import { EndpointSchema } from "../cluster-schema.ts";
import type { EndpointSpec } from "./schema.ts";

const EndpointsFileSchema = z.union([z.strictObject({ endpoints: z.array(EndpointSchema) }), z.array(EndpointSchema)]);

/** Reads and validates the file; throws with a readable reason when it is missing or wrong. */
export async function readEndpointsFile(path: string): Promise<EndpointSpec[]> {
  const raw = parseText(path, await Bun.file(path).text());
  const parsed = EndpointsFileSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${path}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(top level)"}: ${i.message}`).join("; ")}`);
  const list = Array.isArray(parsed.data) ? parsed.data : parsed.data.endpoints;
  return list.map((e) => (typeof e === "string" ? { url: e, weight: 1 } : { url: e.url, weight: e.weight }));
}
