/** The entries a watched path goes through: its own, and symlink chains as Kubernetes lays them out. */
import { expect, test } from "bun:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { entriesOnPath } from "../../src/util/watch-path.ts";
import { tempDir } from "../helpers/tmp.ts";

const asObject = (entries: Map<string, Set<string>>) => Object.fromEntries([...entries].map(([dir, names]) => [dir, [...names].sort()]));

test("a plain file: its own entry in its directory; a missing one too (watched for its creation)", () => {
  const dir = tempDir();
  try {
    writeFileSync(dir.file("cfg.yaml"), "");
    expect(asObject(entriesOnPath(dir.file("cfg.yaml")))).toEqual({ [dir.path]: ["cfg.yaml"] });
    expect(asObject(entriesOnPath(dir.file("nope.yaml")))).toEqual({ [dir.path]: ["nope.yaml"] });
  } finally {
    dir.cleanup();
  }
});

test("a ConfigMap volume: cfg.yaml and ..data in the volume, and the file in the directory ..data points to", () => {
  const dir = tempDir();
  try {
    mkdirSync(dir.file("..2026_01"));
    writeFileSync(join(dir.path, "..2026_01", "cfg.yaml"), "");
    symlinkSync("..2026_01", dir.file("..data"));
    symlinkSync("..data/cfg.yaml", dir.file("cfg.yaml"));
    expect(asObject(entriesOnPath(dir.file("cfg.yaml")))).toEqual({ [dir.path]: ["..data", "cfg.yaml"], [dir.file("..2026_01")]: ["cfg.yaml"] });
  } finally {
    dir.cleanup();
  }
});

test("a symlink loop ends (bounded hops)", () => {
  const dir = tempDir();
  try {
    symlinkSync("b", dir.file("a"));
    symlinkSync("a", dir.file("b"));
    expect(asObject(entriesOnPath(dir.file("a")))).toEqual({ [dir.path]: ["a", "b"] });
  } finally {
    dir.cleanup();
  }
});
