/** Applies migrations/*.sql in order, each once, recorded in schema_migrations. */
import type { Client } from "@libsql/client";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const DIR = join(import.meta.dir, "migrations");

export async function migrate(client: Client): Promise<void> {
  await client.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)");
  const done = new Set((await client.execute("SELECT name FROM schema_migrations")).rows.map((r) => String(r.name)));
  for (const name of readdirSync(DIR).filter((f) => f.endsWith(".sql")).sort()) {
    if (done.has(name)) continue;
    const sql = await Bun.file(join(DIR, name)).text();
    // Several processes may start at once: the migration and its record commit together.
    await client.executeMultiple(`BEGIN IMMEDIATE;\n${sql}\nINSERT OR IGNORE INTO schema_migrations (name, applied_at) VALUES ('${name.replace(/'/g, "''")}', ${Date.now() / 1000});\nCOMMIT;`);
  }
}
