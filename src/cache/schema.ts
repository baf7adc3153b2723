import { z } from "zod";
import { FilePathSchema } from "../config/file-path.ts";
import { DurationSchema, SizeSchema, TokenSchema } from "../config/primitives.ts";

/** A named cache (top-level `caches`): one libSQL file, shared by every route and worker that names it. */
export const CacheSchema = z.strictObject({
  /** The libSQL file, relative to the config file's folder. Default switchyard-cache.db (beside the config file). */
  path: FilePathSchema.prefault("switchyard-cache.db"),
  /** Larger bodies stream through uncached. Default 1MiB. */
  max_object: SizeSchema.prefault("1MiB"),
  /** Total stored body bytes; least recently used entries go first. Default 256MiB. */
  max_total: SizeSchema.prefault("256MiB"),
  /** In-memory tier in front of the file, for hot small objects. */
  memory: z.strictObject({
    max_object: SizeSchema.prefault("64KiB"),
    max_total: SizeSchema.prefault("32MiB"),
  }).prefault({}),
  /** Cap on heuristic freshness (RFC 9111 §4.2.2). Default 1h. */
  heuristic_max: DurationSchema.prefault("1h"),
});

/** A route's use of a cache. */
export const RouteCacheSchema = z.strictObject({
  /** The name of a cache under `caches`. */
  name: z.string().min(1),
  key: z.strictObject({
    /** Query parameters left out of the key (e.g. utm_source). The rest are sorted. */
    ignore_query: z.array(z.string().min(1)).default([]),
    /** Request headers made part of the key (besides what Vary asks for). */
    headers: z.array(TokenSchema).default([]),
  }).prefault({}),
  /** Collapsed forwarding: concurrent misses for one key make one upstream request. */
  collapse: z.strictObject({
    /** Default true. */
    enabled: z.boolean().default(true),
    /** How long followers wait for the leader before going upstream themselves. Default 5s. */
    wait: DurationSchema.prefault("5s"),
    /** A leader's claim across worker processes lapses after this (a crashed leader). Default 30s. */
    lease: DurationSchema.prefault("30s"),
  }).prefault({}),
  /** Answer the PURGE method on this route by purging the URL's entries (every variant). Default false: anyone who can reach the route could purge. */
  purge_method: z.boolean().default(false),
  /** A response header listing the tags to purge by (space- or comma-separated). Default surrogate-key. */
  tags_header: TokenSchema.default("surrogate-key"),
});

export type CacheConfig = z.infer<typeof CacheSchema>;
export type RouteCacheConfig = z.infer<typeof RouteCacheSchema>;
