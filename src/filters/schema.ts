/** Every filter's config, a union on `type` (each filter owns its schema in its folder). */
import { z } from "zod";
import { AuthFilterSchema } from "./auth/schema.ts";
import { AuthorizeFilterSchema } from "./authorize/schema.ts";
import { CorsFilterSchema } from "./cors/schema.ts";
import { RateLimitFilterSchema } from "./rate-limit/schema.ts";
import { TransformFilterSchema } from "./transform/schema.ts";
import { WafFilterSchema } from "./waf/schema.ts";

export const FilterSchema = z.discriminatedUnion("type", [CorsFilterSchema, AuthFilterSchema, AuthorizeFilterSchema, RateLimitFilterSchema, WafFilterSchema, TransformFilterSchema]);

export type FilterConfig = z.infer<typeof FilterSchema>;
