/**
 * The embedded libSQL file: the only module (with migrate.ts) that touches @libsql/client.
 * Rules from shared/bun-notes.md, measured there: always a busy timeout (without one, writes after
 * SQLITE_BUSY were reported as done yet never committed); after any error the client is recreated;
 * WAL so that readers never block the writer.
 */
import type { Client, InArgs, ResultSet } from "@libsql/client";
import { migrate } from "./migrate.ts";

export interface Store {
  readonly path: string;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  /** Runs statements in one write transaction. */
  batch(statements: { sql: string; args?: InArgs }[]): Promise<ResultSet[]>;
  close(): void;
}

export interface StoreOptions {
  /** Busy timeout (ms): how long a write waits for another process's lock. Default 5000. */
  busyTimeoutMs?: number;
}

export async function openStore(path: string, options: StoreOptions = {}): Promise<Store> {
  const timeout = options.busyTimeoutMs ?? 5000;
  // Loaded with the first file opened: a config without a cache or idempotency never loads it.
  const { createClient } = await import("@libsql/client");
  const connect = async (): Promise<Client> => {
    const c = createClient({ url: `file:${path}`, timeout, intMode: "number" });
    await c.execute("PRAGMA journal_mode = WAL");
    await c.execute("PRAGMA synchronous = NORMAL");
    await c.execute("PRAGMA foreign_keys = ON");
    return c;
  };
  let client = await connect();
  await migrate(client);

  /** On any error the client is replaced before the error is passed on (bun-notes: libsql-client-ts#352). */
  const guarded = async <T>(run: (c: Client) => Promise<T>): Promise<T> => {
    try {
      return await run(client);
    } catch (e) {
      const broken = client;
      client = await connect();
      broken.close();
      throw e;
    }
  };

  return {
    path,
    execute: (sql, args) => guarded((c) => c.execute({ sql, args: args ?? [] })),
    batch: (statements) => guarded((c) => c.batch(statements.map((s) => ({ sql: s.sql, args: s.args ?? [] })), "write")),
    close: () => client.close(),
  };
}

/** Files are opened once per process, whatever the number of reloads or users. */
const shared = new Map<string, Promise<Store>>();

export function sharedStore(path: string): Promise<Store> {
  let s = shared.get(path);
  if (!s) {
    s = openStore(path);
    shared.set(path, s);
    s.catch(() => shared.delete(path)); // a failed open is tried again next time
  }
  return s;
}
