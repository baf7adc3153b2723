/** A route's `coalesce` and `idempotency` settings (cache/coalesce.ts, cache/idempotency.ts). */
import { z } from "zod";
import { FilePathSchema } from "../config/file-path.ts";
import { DurationSchema, SizeSchema, TokenSchema } from "../config/primitives.ts";

export const CoalesceSchema = z.strictObject({
  /** Answers up to this size are shared; larger ones are not (followers go upstream). Default 1MiB. */
  max_body: SizeSchema.prefault("1MiB"),
  /** How long followers wait for the leader's answer. Default 5s. */
  wait: DurationSchema.prefault("5s"),
});

export type CoalesceConfig = z.infer<typeof CoalesceSchema>;

export const IdempotencySchema = z.strictObject({
  /** The request header holding the key. Default idempotency-key. */
  header: TokenSchema.default("idempotency-key"),
  /** Methods it applies to. Default POST, PUT, PATCH. */
  methods: z.array(z.string().regex(/^[A-Z]+$/)).default(["POST", "PUT", "PATCH"]),
  /** How long a record is kept. Default 24h. */
  ttl: DurationSchema.prefault("24h"),
  /** Request and response bodies up to this size; a larger request body gets 413. Default 1MiB. */
  max_body: SizeSchema.prefault("1MiB"),
  /** The libSQL file of the records, relative to the config file's folder. Default switchyard-state.db (beside the config file). */
  path: FilePathSchema.prefault("switchyard-state.db"),
});

export type IdempotencyConfig = z.infer<typeof IdempotencySchema>;
