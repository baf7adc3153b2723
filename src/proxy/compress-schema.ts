/** A route's `compression` (proxy/compress.ts). */
import { z } from "zod";
import { SizeSchema } from "../config/primitives.ts";

export const ALGORITHMS = ["br", "zstd", "gzip"] as const;

export type Algorithm = (typeof ALGORITHMS)[number];

export const CompressionSchema = z.strictObject({
  /** Encodings offered, in the server's order of preference among equal q-values. Default br, zstd, gzip. */
  algorithms: z.array(z.enum(ALGORITHMS)).min(1).default(["br", "zstd", "gzip"]),
  /** Content types compressed (`type/*` allowed). */
  types: z.array(z.string().regex(/^[a-z0-9.+-]+\/(\*|[a-z0-9.+-]+)$/, "must be a media type such as text/html or text/*"))
    .default(["text/*", "application/json", "application/javascript", "application/xml", "application/problem+json", "image/svg+xml"]),
  /** Smaller bodies (by Content-Length) are sent as they are. Default 1KiB. */
  min_size: SizeSchema.prefault("1KiB"),
  /** Decode gzip, br or zstd request bodies before the upstream sees them. Default false. */
  decompress_requests: z.boolean().default(false),
  /** A decoded request body larger than this fails the request (a compression bomb). Default 16MiB. */
  max_decompressed: SizeSchema.prefault("16MiB"),
});

export type CompressionConfig = z.infer<typeof CompressionSchema>;
