import { dirname, resolve } from "node:path";
import type { z } from "zod";
import { tlsFileProblems } from "../security/tls-files.ts";
import { withConfigDir } from "./file-path.ts";
import { formatPath } from "./path.ts";
import { type Config, ConfigSchema } from "./schema.ts";
import { yamlSyntaxProblems } from "./yaml-syntax.ts";

export { formatPath };

/** One problem: where in the config (`routes[3].retry.attempts`; none for a syntax error) and what is wrong. */
export interface ConfigIssue {
  readonly path?: string;
  readonly message: string;
}

/** A config that could not be loaded: every problem, each with its path inside the file. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  /** The lines `switchyard validate` prints: `path: message`. */
  readonly problems: readonly string[];

  constructor(readonly file: string, issues: readonly (ConfigIssue | string)[]) {
    const all = issues.map((i) => (typeof i === "string" ? { message: i } : i));
    const problems = all.map((i) => (i.path === undefined ? i.message : `${i.path}: ${i.message}`));
    super(`${file}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.issues = all;
    this.problems = problems;
  }
}

function describeIssue(issue: z.core.$ZodIssue): ConfigIssue {
  if (issue.code === "unrecognized_keys") {
    return { path: formatPath(issue.path), message: `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}` };
  }
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    // Report the branch that got furthest rather than zod's generic "Invalid input".
    const best = issue.errors.reduce((a, b) => (a.length <= b.length ? a : b));
    const first = best[0];
    if (first) return describeIssue({ ...first, path: [...issue.path, ...first.path] } as z.core.$ZodIssue);
  }
  if (issue.code === "invalid_key" && issue.issues.length > 0) {
    // A record's key (a cluster, cache or rate-limit name) that breaks its rule: say which rule.
    return { path: formatPath(issue.path), message: issue.issues.map((i) => i.message).join("; ") };
  }
  return { path: formatPath(issue.path), message: issue.message };
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` and `${VAR:-default}` in every string value; an unset variable without default is a problem at its path. */
export function substituteEnv(value: unknown, env: Record<string, string | undefined>, problems: ConfigIssue[], path: PropertyKey[] = []): unknown {
  if (typeof value === "string") {
    return value.replace(ENV_RE, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      // As in the shell, `${VAR:-default}` also takes the default when VAR is set but empty.
      if (v !== undefined && (v !== "" || fallback === undefined)) return v;
      if (fallback !== undefined) return fallback;
      problems.push({ path: formatPath(path), message: `environment variable ${name} is not set` });
      return "";
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, problems, [...path, i]));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = substituteEnv(v, env, problems, [...path, k]);
    return out;
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export function parseText(file: string, text: string): unknown {
  if (file.endsWith(".json")) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ConfigError(file, [`syntax error: ${(e as Error).message}`]);
    }
  }
  try {
    return Bun.YAML.parse(text);
  } catch (e) {
    throw new ConfigError(file, yamlSyntaxProblems(file, text, e as Error));
  }
}

/**
 * The document each config was validated from, after `${VAR}` substitution: what a push (config
 * service, workers) builds on and re-validates with validateLiteral, so the part it keeps is the
 * same config and the part it replaces never has variables substituted into it.
 */
const documents = new WeakMap<Config, { document: Record<string, unknown>; baseDir: string }>();

export function configDocument(config: Config): Record<string, unknown> {
  return documents.get(config)?.document ?? {};
}

/**
 * The folder a config's relative paths were resolved against (config/file-path.ts): its file's.
 * A config pushed without a file (PUT /config, the config service, relays to workers) is
 * validated with the baseDir of the config in force, so it is always the main config file's.
 */
export function configBaseDir(config: Config): string {
  return documents.get(config)?.baseDir ?? process.cwd();
}

export interface ValidateOptions {
  /**
   * Read and check the files the config names (TLS certificates, keys, CAs). Default true; false
   * for a config checked for its shape only (e.g. the README's example).
   */
  readonly checkFiles?: boolean;
  /** The folder relative paths are resolved against. Default: the folder of `file`. */
  readonly baseDir?: string;
}

function validate(file: string, document: unknown, problems: ConfigIssue[], options: ValidateOptions): Config {
  const baseDir = options.baseDir ?? dirname(resolve(file));
  const result = withConfigDir(baseDir, () => ConfigSchema.safeParse(document));
  if (!result.success) problems.push(...result.error.issues.map(describeIssue));
  else if (options.checkFiles !== false) problems.push(...tlsFileProblems(result.data));
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems);
  const config = deepFreeze(result.data);
  documents.set(config, { document: deepFreeze(document as Record<string, unknown>), baseDir });
  return config;
}

/** Validates an already-parsed document into a typed, frozen config. */
export function validateConfig(file: string, raw: unknown, env: Record<string, string | undefined> = process.env, options: ValidateOptions = {}): Config {
  const problems: ConfigIssue[] = [];
  protoKeys(raw, problems);
  return validate(file, substituteEnv(raw ?? {}, env, problems), problems, options);
}

/** `__proto__` as a key (JSON.parse and YAML keep it) would vanish on the way into the config: refused at its path. */
function protoKeys(value: unknown, problems: ConfigIssue[], path: PropertyKey[] = []): void {
  if (value === null || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value)) {
    if (k === "__proto__") problems.push({ path: formatPath(path), message: `"__proto__" is not allowed as a key` });
    protoKeys(v, problems, [...path, k]);
  }
}

/** Validates a document whose strings are taken literally (no `${VAR}` substitution): pushed configs. */
export function validateLiteral(file: string, document: unknown, options: ValidateOptions = {}): Config {
  const problems: ConfigIssue[] = [];
  protoKeys(document, problems);
  return validate(file, document ?? {}, problems, options);
}

/** The text of a config file, or a ConfigError saying why it cannot be read. */
export async function readConfigFile(file: string): Promise<string> {
  try {
    return await Bun.file(file).text();
  } catch (e) {
    throw new ConfigError(file, [`cannot read the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
}

/** A config file's text (YAML, or JSON for `.json`) → typed, frozen config. */
export function configFromText(file: string, text: string, env: Record<string, string | undefined> = process.env): Config {
  return validateConfig(file, parseText(file, text), env);
}

export async function loadConfigFile(file: string, env: Record<string, string | undefined> = process.env): Promise<Config> {
  return configFromText(file, await readConfigFile(file), env);
}
