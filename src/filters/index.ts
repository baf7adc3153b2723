/** The filter registry: config `type` → factory, exhaustive at compile time. */
import type { FilterFactory, RuntimeDeps } from "./filter.ts";
import { authFilter } from "./auth/auth.ts";
import { authorizeFilter } from "./authorize/authorize.ts";
import { corsFilter } from "./cors/cors.ts";
import { rateLimitFilter } from "./rate-limit/rate-limit.ts";
import { wafFilter } from "./waf/waf.ts";
import type { FilterConfig } from "./schema.ts";
import { transformFilter } from "./transform/transform.ts";
import type { Filter } from "../proxy/context.ts";

type Factories = { [T in FilterConfig["type"]]: FilterFactory<Extract<FilterConfig, { type: T }>> };

const factories = {
  cors: corsFilter,
  auth: authFilter,
  authorize: authorizeFilter,
  rate_limit: rateLimitFilter,
  waf: wafFilter,
  transform: transformFilter,
} satisfies Factories;

export function buildFilter(config: FilterConfig, deps: RuntimeDeps): Filter {
  return (factories[config.type] as FilterFactory<FilterConfig>)(config, deps);
}
