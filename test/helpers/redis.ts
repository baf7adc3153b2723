/** A real redis-server of the test's own (Debian's package; .ci/run installs it): free port, temp dir, no persistence. */
import type { Subprocess } from "bun";
import { tempDir, waitFor } from "./tmp.ts";
import { freePort } from "./upstream.ts";

export interface TestRedis {
  port: number;
  url: string;
  /** Runs a redis-cli-like command against it (through Bun's client). */
  command(cmd: string, args: string[]): Promise<unknown>;
  /** SIGKILL: the server vanishes mid-run. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server stays connected but answers nothing (a hung Redis). */
  pause(): void;
  resume(): void;
  /** Starts it again on the same port (after kill). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const dir = tempDir("switchyard-redis-");
  const port = freePort();
  let proc: Subprocess<"ignore", "ignore", "pipe">;
  let client: import("bun").RedisClient | undefined;
  const spawn = async () => {
    proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path], {
      stdin: "ignore", stdout: "ignore", stderr: "pipe",
    });
    await waitFor(`redis-server on port ${port}`, async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${await new Response(proc.stderr).text()}`);
      const probe = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).catch(() => undefined);
      probe?.end();
      return probe !== undefined;
    });
  };
  await spawn();
  const url = `redis://127.0.0.1:${port}`;
  const killProc = async () => {
    client?.close();
    client = undefined;
    proc.kill("SIGKILL");
    await proc.exited;
  };
  return {
    port,
    url,
    async command(cmd, args) {
      if (client === undefined) {
        const { RedisClient } = await import("bun");
        client = new RedisClient(url);
      }
      return client.send(cmd, args);
    },
    kill: killProc,
    pause: () => proc.kill("SIGSTOP"),
    resume: () => proc.kill("SIGCONT"),
    restart: spawn,
    async stop() {
      proc.kill("SIGCONT");
      await killProc();
      dir.cleanup();
    },
  };
}
