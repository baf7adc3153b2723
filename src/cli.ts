#!/usr/bin/env bun
/** `switchyard start | validate | schema | hash-key | slo-rules` */
import { ConfigError, loadConfigFile } from "./config/load.ts";
import { configJsonSchema } from "./config/schema.ts";
import { superviseWorkers, WORKER_ENV } from "./server/workers.ts";

const USAGE = `usage:
  switchyard start [CONFIG] [--workers N|auto]
                                 run the proxy (default config: ./switchyard.yaml); N processes
                                 share the listeners (auto: one per core; default: config's workers)
  switchyard validate CONFIG     check a config file; print every problem with its path
  switchyard validate CONFIG --explain [METHOD] URL
                                 …and show which route and cluster that request would hit
  switchyard schema              print the config's JSON Schema (for editors)
  switchyard slo-rules CONFIG    print Prometheus recording and burn-rate alerting rules for the
                                 routes' SLOs (a rules file for promtool and Prometheus)
  switchyard hash-key [KEY]      print the sha256 of an API key, for auth.<name>.keys[].sha256
                                 (reads the key from stdin when not given: keeps it out of shell history)`;

/**
 * How to start this program again: `bun src/cli.ts` from source, the executable alone when built
 * with `bun build --compile` (its script path is the embedded /$bunfs/… one, which is no command).
 */
export function selfCommand(): string[] {
  return import.meta.path.startsWith("/$bunfs/") ? [process.execPath] : [process.execPath, import.meta.path];
}

/** Bun reads its fetch concurrency cap only at process start (measured): re-exec with it raised. */
async function reexecWithFetchCap(): Promise<never> {
  const child = Bun.spawn([...selfCommand(), ...process.argv.slice(2)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" },
    stdio: ["inherit", "inherit", "inherit"],
  });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => child.kill(signal));
  process.exit(await child.exited);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "start": {
      if (!process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) await reexecWithFetchCap();
      const flag = rest.indexOf("--workers");
      const flagValue = flag === -1 ? undefined : rest.splice(flag, 2)[1];
      const file = rest[0] ?? "switchyard.yaml";
      if (process.env[WORKER_ENV] === undefined) {
        let workers: number;
        try {
          workers = (await loadConfigFile(file)).workers;
        } catch (e) {
          console.error(e instanceof ConfigError ? e.message : String(e));
          return 1;
        }
        if (flagValue !== undefined) {
          workers = flagValue === "auto" ? navigator.hardwareConcurrency : Number(flagValue);
          if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
            console.error(`--workers takes a number from 1 to 64, or auto (one per core); got "${flagValue}"`);
            return 2;
          }
        }
        if (workers > 1) return await superviseWorkers(selfCommand(), file, workers);
      }
      const { start, logEvent } = await import("./main.ts");
      let running: Awaited<ReturnType<typeof start>>;
      try {
        running = await start(file, process.env[WORKER_ENV] === undefined ? undefined : Number(process.env[WORKER_ENV]));
      } catch (e) {
        console.error(e instanceof ConfigError ? e.message : `failed to start: ${(e as Error).message}`);
        return 1;
      }
      const stop = (signal: string) => {
        logEvent({ msg: "signal", signal });
        void running.shutdown().then(() => process.exit(0));
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
      return await new Promise<number>(() => {});
    }
    case "validate": {
      if (!rest[0]) break;
      try {
        const config = await loadConfigFile(rest[0]);
        // Route modules are code: loading them is the only way to know they load.
        if (config.modules !== undefined) (await import("./modules/load.ts")).loadConfigModules(config);
        console.log(`${rest[0]}: ok`);
        if (rest[1] === "--explain") {
          const [method, target] = rest[3] === undefined ? ["GET", rest[2]] : [rest[2]!, rest[3]];
          let url: URL;
          try {
            url = new URL(target ?? "");
          } catch {
            console.error("--explain needs an absolute URL, e.g. --explain GET https://api.example.com/orders/7");
            return 2;
          }
          const { buildRuntime } = await import("./runtime/build.ts");
          const { explainRequest } = await import("./runtime/explain.ts");
          const runtime = buildRuntime(config, 1);
          console.log(JSON.stringify(explainRequest(runtime, method!, url, new Headers()), null, 2));
          runtime.dispose();
        }
        return 0;
      } catch (e) {
        console.error(e instanceof ConfigError ? e.message : String(e));
        return 1;
      }
    }
    case "slo-rules": {
      if (!rest[0]) break;
      try {
        const rules = (await import("./slo/rules.ts")).sloRules(await loadConfigFile(rest[0]));
        if (rules === undefined) {
          console.error(`${rest[0]}: no route declares an slo`);
          return 1;
        }
        process.stdout.write(rules);
        return 0;
      } catch (e) {
        console.error(e instanceof ConfigError ? e.message : String(e));
        return 1;
      }
    }
    case "schema":
      console.log(JSON.stringify(configJsonSchema(), null, 2));
      return 0;
    case "hash-key": {
      const key = rest[0] ?? (await Bun.stdin.text()).replace(/\r?\n$/, "");
      if (key === "") {
        console.error("hash-key needs a key (as an argument or on stdin)");
        return 2;
      }
      const { sha256Hex } = await import("./filters/auth/api-key.ts");
      console.log(sha256Hex(key));
      return 0;
    }
  }
  console.error(USAGE);
  return 2;
}

process.exit(await main(process.argv.slice(2)));
