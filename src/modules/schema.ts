import { z } from "zod";
import { FilePathSchema } from "../config/file-path.ts";

/** Custom route modules: TypeScript files that answer routes with `module: <file name>`. */
export const ModulesSchema = z.strictObject({
  /**
   * The directory (relative to the config file's folder) whose `*.ts` files are loaded at start and
   * on every reload; each default-exports a Hono app, or a function that returns one. Only the
   * top level is scanned: helpers they import can live in subdirectories.
   */
  dir: FilePathSchema,
});

export type ModulesConfig = z.infer<typeof ModulesSchema>;

/** A module is named by its file name without `.ts`. */
export const MODULE_NAME = /^[A-Za-z0-9_.-]+$/;
