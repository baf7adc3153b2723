/**
 * Loads the custom route modules of `modules.dir`, synchronously (Bun's require of ES modules,
 * so a runtime build stays synchronous): every top-level `*.ts` file, fresh on each build so a
 * reload picks up edited files. A file that fails to load, or does not default-export a Hono
 * app (or a function returning one), is a config error naming the file.
 */
import { readdirSync } from "node:fs";
import { basename, join, resolve, sep } from "node:path";
import { ConfigError } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { MODULE_NAME } from "./schema.ts";
import type { ModuleApp, ModuleContext, ModuleExport } from "./types.ts";

export interface LoadedModule {
  readonly name: string;
  readonly file: string;
  /** The module's app for one runtime (a factory is called here). */
  build(context: ModuleContext): ModuleApp;
}

function describe(e: unknown): string {
  // A syntax error arrives as an AggregateError whose parts say where.
  if (e instanceof AggregateError && e.errors.length > 0) return e.errors.map((x) => String(x)).join("; ");
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function isApp(value: unknown): value is ModuleApp {
  return typeof value === "object" && value !== null && typeof (value as { fetch?: unknown }).fetch === "function" && typeof (value as { route?: unknown }).route === "function";
}

export function loadModules(dir: string): Map<string, LoadedModule> {
  const root = resolve(dir);
  let files: string[];
  try {
    files = readdirSync(root).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")).sort();
  } catch (e) {
    throw new ConfigError(root, [`modules.dir: cannot read the directory: ${(e as NodeJS.ErrnoException).code ?? describe(e)}`]);
  }
  // Forget what an earlier build loaded from this directory (and its subdirectories).
  for (const key of Object.keys(require.cache)) if (key.startsWith(root + sep)) delete require.cache[key];
  const modules = new Map<string, LoadedModule>();
  for (const f of files) {
    const file = join(root, f);
    const name = basename(f, ".ts");
    if (!MODULE_NAME.test(name)) throw new ConfigError(file, ["a module's file name must be letters, digits, _ . or - (it is the module's name)"]);
    // Also when it is not listed: Bun keeps a module that failed to evaluate in its own registry,
    // and only this delete makes the next require read the file again (measured, Bun 1.4.5).
    delete require.cache[file];
    let exported: unknown;
    try {
      exported = (require(file) as { default?: unknown }).default;
    } catch (e) {
      throw new ConfigError(file, [`the module failed to load: ${describe(e)}`]);
    }
    if (!isApp(exported) && typeof exported !== "function") {
      throw new ConfigError(file, ["the module must default-export a Hono app, or a function that returns one"]);
    }
    modules.set(name, {
      name,
      file,
      build(context) {
        if (isApp(exported)) return exported;
        let app: unknown;
        try {
          app = (exported as (c: ModuleContext) => unknown)(context);
        } catch (e) {
          throw new ConfigError(file, [`the module's factory threw: ${describe(e)}`]);
        }
        if (!isApp(app)) throw new ConfigError(file, ["the module's factory must return a Hono app"]);
        return app;
      },
    });
  }
  return modules;
}

/** Loads the config's modules and checks that every route's `module` is among them. */
export function loadConfigModules(config: Config): Map<string, LoadedModule> {
  const modules = config.modules === undefined ? new Map<string, LoadedModule>() : loadModules(config.modules.dir);
  const problems: string[] = [];
  config.routes.forEach((r, i) => {
    if (r.module !== undefined && !modules.has(r.module)) {
      problems.push(`routes[${i}].module: unknown module "${r.module}" (${modules.size > 0 ? `found in ${config.modules!.dir}: ${[...modules.keys()].join(", ")}` : `no .ts files in ${config.modules?.dir}`})`);
    }
  });
  if (problems.length > 0) throw new ConfigError(config.modules?.dir ?? "modules", problems);
  return modules;
}
