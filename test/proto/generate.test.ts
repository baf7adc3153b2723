/** src/gen is what `bun run gen` makes of the .proto sources: regenerated into a temp dir and compared file by file. */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/tmp.ts";

const ROOT = join(import.meta.dir, "..", "..");

function tree(dir: string): Map<string, string> {
  const files = readdirSync(dir, { recursive: true, encoding: "utf8", withFileTypes: false }).filter((f) => f.endsWith(".ts")).sort();
  return new Map(files.map((f) => [f, readFileSync(join(dir, f), "utf8")]));
}

test("src/gen is current with the generator (run `bun run gen` after changing a .proto or the toolchain)", () => {
  const dir = tempDir("switchyard-gen-");
  try {
    const run = Bun.spawnSync(["bun", join(ROOT, "src", "proto", "generate.ts"), dir.path], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
    const fresh = tree(join(dir.path, "src", "gen"));
    const committed = tree(join(ROOT, "src", "gen"));
    expect(fresh.size).toBeGreaterThanOrEqual(4);
    expect([...committed.keys()]).toEqual([...fresh.keys()]);
    for (const [file, text] of fresh) expect({ file, text: committed.get(file) }).toEqual({ file, text });
  } finally {
    dir.cleanup();
  }
}, 30_000);
