/** The differences between two configs, as `path: before → after` lines (for dry runs and logs). */
import { formatPath } from "./path.ts";

export interface Change {
  path: string;
  before: unknown;
  after: unknown;
}

export function diffConfig(before: unknown, after: unknown, path: PropertyKey[] = [], out: Change[] = []): Change[] {
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
  if (Array.isArray(before) && Array.isArray(after)) {
    const n = Math.max(before.length, after.length);
    for (let i = 0; i < n; i++) diffConfig(before[i], after[i], [...path, i], out);
    return out;
  }
  if (isObject(before) && isObject(after)) {
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) diffConfig(before[key], after[key], [...path, key], out);
    return out;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push({ path: formatPath(path), before, after });
  return out;
}
