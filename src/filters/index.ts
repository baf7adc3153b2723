/** The filter registry: config `type` → factory, exhaustive at compile time. */
import type { Filter, FilterFactory, RuntimeDeps } from "./filter.ts";
import { corsFilter } from "./cors/cors.ts";
import type { FilterConfig } from "./schema.ts";

type Factories = { [T in FilterConfig["type"]]: FilterFactory<Extract<FilterConfig, { type: T }>> };

const factories = {
  cors: corsFilter,
} satisfies Factories;

export function buildFilter(config: FilterConfig, deps: RuntimeDeps): Filter {
  return (factories[config.type] as FilterFactory<FilterConfig>)(config, deps);
}
