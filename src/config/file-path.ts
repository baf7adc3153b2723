/**
 * Paths in the config — certificates and keys, the modules directory, descriptor sets, cache and
 * state files, key files, file discovery, the access log — are relative to the config file's
 * folder, not to the process's working directory, so one config works wherever the proxy is
 * started from. A config without a file of its own (PUT /config, a config-service push) takes the
 * main config file's folder.
 *
 * Every path field is a FilePathSchema, which makes the path absolute as the config is parsed:
 * whatever reads it later (TLS, modules, the store, checks inside the schema) sees one absolute
 * path. The folder is set by the loader around the parse (withConfigDir); zod parses
 * synchronously, so no other parse can run in between. Outside it, the working directory.
 */
import { resolve } from "node:path";
import { z } from "zod";

let configDir: string | undefined;

/** Runs `parse` (synchronous) with relative config paths resolved against `dir`. */
export function withConfigDir<T>(dir: string, parse: () => T): T {
  const outer = configDir;
  configDir = dir;
  try {
    return parse();
  } finally {
    configDir = outer;
  }
}

/** `path` made absolute against the config's folder (an absolute path stays as it is). */
export function configPath(path: string): string {
  return resolve(configDir ?? process.cwd(), path);
}

const RULE = "relative to the config file's folder (for a config pushed without a file: the main config file's folder)";

/** A file or directory path; parsed to an absolute path. Defaults are given with `.prefault()`, so they are resolved too. */
export const FilePathSchema = z.string().min(1, "a file path").describe(`A file path, ${RULE}`).transform(configPath);

/** `stdout`, `stderr`, or a file path resolved as FilePathSchema's. */
export const LogTargetSchema = z
  .string()
  .min(1)
  .describe(`stdout, stderr, or a file path ${RULE}`)
  .transform((target) => (target === "stdout" || target === "stderr" ? target : configPath(target)));
