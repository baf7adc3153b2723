import { z } from "zod";
import { FilePathSchema } from "../config/file-path.ts";

/** The machine's own state file (top-level `state`): rollout progress and SLO history survive restarts in it. */
export const StateSchema = z.strictObject({
  /**
   * The libSQL file, relative to the config file's folder; opened only when a route has a
   * `rollout` or an `slo`. Default switchyard-state.db (beside the config file).
   */
  path: FilePathSchema.prefault("switchyard-state.db"),
});
