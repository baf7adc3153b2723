import type { z } from "zod";
import { type Config, ConfigSchema } from "./schema.ts";

/** A config that could not be loaded: every problem, each with its path inside the file. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: readonly string[]) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? "" : "s"}\n${problems.map((p) => `  ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** `routes[3].retry.attempts` from ["routes", 3, "retry", "attempts"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out || "(top level)";
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return `${formatPath(issue.path)}: unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  }
  if (issue.code === "invalid_union" && issue.errors.length > 0) {
    // Report the branch that got furthest rather than zod's generic "Invalid input".
    const best = issue.errors.reduce((a, b) => (a.length <= b.length ? a : b));
    const first = best[0];
    if (first) return describeIssue({ ...first, path: [...issue.path, ...first.path] } as z.core.$ZodIssue);
  }
  return `${formatPath(issue.path)}: ${issue.message}`;
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` and `${VAR:-default}` in every string value; an unset variable without default is a problem at its path. */
export function substituteEnv(value: unknown, env: Record<string, string | undefined>, problems: string[], path: PropertyKey[] = []): unknown {
  if (typeof value === "string") {
    return value.replace(ENV_RE, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      // As in the shell, `${VAR:-default}` also takes the default when VAR is set but empty.
      if (v !== undefined && (v !== "" || fallback === undefined)) return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${formatPath(path)}: environment variable ${name} is not set`);
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

/**
 * Bun.YAML's errors carry no position: the line is estimated as the one after the longest prefix
 * of the file that still parses (only ever run on a file that failed).
 */
function yamlErrorLine(text: string): number {
  const lines = text.split("\n");
  let good = 0;
  for (let n = 1; n <= lines.length; n++) {
    try {
      Bun.YAML.parse(lines.slice(0, n).join("\n"));
      good = n;
    } catch {
      // keep looking: a later prefix may close a multi-line construct
    }
  }
  return Math.min(good + 1, lines.length);
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
    throw new ConfigError(file, [`syntax error near line ${yamlErrorLine(text)}: ${(e as Error).message}`]);
  }
}

/** Validates an already-parsed document into a typed, frozen config. */
export function validateConfig(file: string, raw: unknown, env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  const substituted = substituteEnv(raw ?? {}, env, problems);
  const result = ConfigSchema.safeParse(substituted);
  if (!result.success) problems.push(...result.error.issues.map(describeIssue));
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems);
  return deepFreeze(result.data);
}

export async function loadConfigFile(file: string, env: Record<string, string | undefined> = process.env): Promise<Config> {
  let text: string;
  try {
    text = await Bun.file(file).text();
  } catch (e) {
    throw new ConfigError(file, [`cannot read the file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return validateConfig(file, parseText(file, text), env);
}
