/** Starts Switchyard in this process on a config written to a temp file; tests talk to it over real sockets. */
import { writeFileSync } from "node:fs";
import type { ConfigInput } from "../../src/config/schema.ts";
import { type Running, start } from "../../src/main.ts";
import { flushAll } from "../../src/observe/access-log.ts";
import { tempDir, waitFor } from "./tmp.ts";

export interface TestProxy {
  running: Running;
  origin: string;
  port: number;
  configFile: string;
  /** Rewrites the config file (the proxy reloads on change or via `running.reload()`). */
  writeConfig(config: ConfigInput): void;
  /** Access log lines written so far (flushes first). */
  logLines(): Promise<Record<string, unknown>[]>;
  /** Waits for the access log line of `requestId`. */
  logOf(requestId: string): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/**
 * Fills in what every test config needs: one listener on port 0 and an access log file. The
 * listener trusts loopback (trusted_proxies), so tests may name their requests with X-Request-Id
 * and find them in the log; test/security covers untrusted peers with listeners of its own.
 */
export async function startProxy(config: Omit<ConfigInput, "listeners"> & Partial<Pick<ConfigInput, "listeners">>): Promise<TestProxy> {
  const dir = tempDir();
  const logFile = dir.file("access.log");
  const full = (c: typeof config): ConfigInput => ({
    listeners: [{ address: "127.0.0.1", port: 0, trusted_proxies: ["127.0.0.1"] }],
    shutdown: { drain_timeout: "2s" },
    ...c,
    access_log: { path: logFile, ...c.access_log },
  });
  const configFile = dir.file("switchyard.json");
  writeFileSync(configFile, JSON.stringify(full(config), null, 2));
  const running = await start(configFile);
  const port = running.proxies[0]!.port!;
  const logLines = async () => {
    flushAll();
    const text = await Bun.file(logFile).text().catch(() => "");
    return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  return {
    running,
    origin: `http://127.0.0.1:${port}`,
    port,
    configFile,
    writeConfig: (c) => writeFileSync(configFile, JSON.stringify(full(c), null, 2)),
    logLines,
    logOf: (requestId) => waitFor(`access log line of ${requestId}`, async () => (await logLines()).find((l) => l.request_id === requestId)),
    async stop() {
      await running.shutdown();
      dir.cleanup();
    },
  };
}
