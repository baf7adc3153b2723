/**
 * The import graph's rules (design.md, Boundaries), checked on the source as it is so that they
 * stay true: no module circle (type imports included), no upward edge between the folders named
 * below, and config schemas that are leaves (loading the config schema loads nothing of the proxy).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = join(import.meta.dir, "../..");

interface Edge {
  readonly to: string;
  /** A package (not a relative file) */
  readonly external: boolean;
  /** Only types cross it (`import type`, or every name marked `type`). */
  readonly typeOnly: boolean;
}

function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (name !== "gen" && name !== "node_modules") walk(path);
      } else if (name.endsWith(".ts")) out.push(relative(ROOT, path));
    }
  };
  walk(join(ROOT, "src"));
  walk(join(ROOT, "routes"));
  return out.sort();
}

const IMPORT = /^(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s*["']([^"']+)["']|^import\s+["']([^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/gm;

function edgesOf(file: string): Edge[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const edges: Edge[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[3] ?? m[4] ?? m[5]!;
    const names = m[2] ?? "";
    const typeOnly = m[1] !== undefined || m[5] !== undefined || (/^\{[^}]*\}$/.test(names.trim()) && names.replace(/[{}]/g, "").split(",").map((n) => n.trim()).filter(Boolean).every((n) => n.startsWith("type ")));
    if (!spec.startsWith(".")) {
      edges.push({ to: spec, external: true, typeOnly });
      continue;
    }
    let to = relative(ROOT, resolve(dirname(join(ROOT, file)), spec));
    if (!to.endsWith(".ts")) to += ".ts";
    edges.push({ to, external: false, typeOnly });
  }
  return edges;
}

const files = sourceFiles();
const graph = new Map(files.map((f) => [f, edgesOf(f)]));

describe("the import graph", () => {
  test("has no circle, type imports included", () => {
    // Tarjan's strongly connected components over the project's own files.
    let next = 0;
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    const visit = (v: string) => {
      index.set(v, next);
      low.set(v, next++);
      stack.push(v);
      onStack.add(v);
      for (const e of graph.get(v)!) {
        if (e.external || !graph.has(e.to)) continue;
        if (!index.has(e.to)) {
          visit(e.to);
          low.set(v, Math.min(low.get(v)!, low.get(e.to)!));
        } else if (onStack.has(e.to)) low.set(v, Math.min(low.get(v)!, index.get(e.to)!));
      }
      if (low.get(v) === index.get(v)) {
        const part: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          part.push(w);
        } while (w !== v);
        if (part.length > 1) circles.push(part.sort());
      }
    };
    for (const f of files) if (!index.has(f)) visit(f);
    expect(circles).toEqual([]);
  });

  // [from folder, folders it must not import from (types included), why]
  const RULES: [string, string[], string][] = [
    ["src/runtime/", ["routes/"], "route modules are built from the runtime, not the other way round (handlers live in src/compose, src/modules)"],
    ["src/upstream/", ["src/proxy/", "src/runtime/", "routes/"], "clusters know nothing of the request pipeline"],
    ["src/observe/", ["src/filters/", "src/runtime/", "src/proxy/", "routes/"], "logs, metrics and spans read a RequestRecord; live gauges are registered from above"],
    ["src/security/", ["src/proxy/", "src/runtime/", "routes/"], "the guard and TLS code sit below the proxy"],
    ["src/config/", ["src/server/", "src/runtime/", "routes/", "src/store/"], "config knows nothing of servers"],
    ["src/util/", ["src/", "routes/"], "util is the bottom (only other util files)"],
  ];
  for (const [from, forbidden, why] of RULES) {
    test(`${from} imports nothing from ${forbidden.join(", ")}: ${why}`, () => {
      const upward: string[] = [];
      for (const [file, edges] of graph) {
        if (!file.startsWith(from)) continue;
        for (const e of edges) {
          if (e.external) continue;
          if (from === "src/util/" && e.to.startsWith("src/util/")) continue;
          // Schemas are leaves (checked below), below every folder: the config composes them.
          if (e.to.endsWith("schema.ts") && from !== "src/util/") continue;
          if (forbidden.some((f) => e.to.startsWith(f))) upward.push(`${file} → ${e.to}`);
        }
      }
      expect(upward).toEqual([]);
    });
  }
});

describe("config schemas are leaves", () => {
  const isSchema = (f: string) => f.endsWith("schema.ts") || f === "src/config/primitives.ts" || f === "src/config/file-path.ts";
  /** A module with no imports but zod, node builtins and other such modules (a parser, a util). */
  const pure = new Map<string, boolean>();
  const isPure = (f: string, seen = new Set<string>()): boolean => {
    if (pure.has(f)) return pure.get(f)!;
    if (seen.has(f)) return true;
    seen.add(f);
    const ok = (graph.get(f) ?? []).every((e) => (e.external ? e.to === "zod" || e.to.startsWith("node:") : e.typeOnly || isPure(e.to, seen)));
    pure.set(f, ok);
    return ok;
  };

  test("a schema file imports only zod, node builtins, other schemas and pure modules", () => {
    const leaks: string[] = [];
    for (const [file, edges] of graph) {
      if (!isSchema(file)) continue;
      for (const e of edges) {
        if (e.external ? e.to === "zod" || e.to.startsWith("node:") : isSchema(e.to) || isPure(e.to)) continue;
        leaks.push(`${file} → ${e.to}${e.typeOnly ? " (types)" : ""}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  test("loading the config schema loads no package but zod, and no module of the proxy, runtime, store or servers", () => {
    const loaded = new Set<string>();
    const packages = new Set<string>();
    const load = (f: string) => {
      if (loaded.has(f)) return;
      loaded.add(f);
      for (const e of graph.get(f) ?? []) {
        if (e.typeOnly) continue; // erased at run time
        if (e.external) packages.add(e.to);
        else load(e.to);
      }
    };
    load("src/config/schema.ts");
    expect([...packages].filter((p) => p !== "zod" && !p.startsWith("node:"))).toEqual([]);
    const heavy = [...loaded].filter((f) => !isSchema(f) && /^(src\/(proxy|runtime|store|server|observe|cache|upstream)\/|routes\/)/.test(f));
    expect(heavy).toEqual([]);
  });

  test("zod schemas are defined in schema files only (none inside a behaviour file)", () => {
    const misplaced: string[] = [];
    for (const file of files) {
      if (isSchema(file)) continue;
      const text = readFileSync(join(ROOT, file), "utf8");
      for (const m of text.matchAll(/^export const (\w+Schema)\s*=\s*z\b/gm)) misplaced.push(`${file}: ${m[1]}`);
    }
    expect(misplaced).toEqual([]);
  });
});
