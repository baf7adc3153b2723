/** The embedded libSQL store: migrations, and no silent write loss under multi-process contention. */
import { afterAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { openStore } from "../../src/store/client.ts";
import { tempDir } from "../helpers/tmp.ts";

const dir = tempDir();
afterAll(() => dir.cleanup());

test("a new file gets every table; opening it again applies nothing twice", async () => {
  const path = dir.file("fresh.db");
  const a = await openStore(path);
  const tables = (await a.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")).rows.map((r) => r.name);
  expect(tables).toEqual(expect.arrayContaining(["cache_entries", "cache_chunks", "cache_tags", "cache_invalidations", "leases", "idempotency", "schema_migrations"]));
  a.close();
  const b = await openStore(path);
  const migrations = readdirSync(join(import.meta.dir, "../../src/store/migrations")).filter((f) => f.endsWith(".sql")).length;
  expect(migrations).toBeGreaterThan(1);
  expect((await b.execute("SELECT count(*) AS n FROM schema_migrations")).rows[0]!.n).toBe(migrations);
  b.close();
});

test("several processes writing one file under contention: every acknowledged write is there", async () => {
  const path = dir.file("contended.db");
  (await openStore(path)).close();
  const workers = 4;
  const perWorker = 400;
  const procs = Array.from({ length: workers }, (_, w) =>
    Bun.spawn([process.execPath, join(import.meta.dir, "../helpers/store-writer.ts"), path, String(w), String(perWorker)], { stdout: "pipe", stderr: "pipe" }),
  );
  const timer = setTimeout(() => procs.forEach((p) => p.kill()), 60_000);
  const reports = await Promise.all(procs.map(async (p) => JSON.parse(await new Response(p.stdout).text()) as { acknowledged: number; failed: number }));
  clearTimeout(timer);
  const acknowledged = reports.reduce((sum, r) => sum + r.acknowledged, 0);
  const store = await openStore(path);
  const rows = Number((await store.execute("SELECT count(*) AS n FROM leases")).rows[0]!.n);
  store.close();
  console.log(`${workers} writers × ${perWorker}: ${acknowledged} acknowledged, ${rows} rows, ${reports.reduce((s, r) => s + r.failed, 0)} reported failures`);
  expect(rows).toBe(acknowledged);
  expect(acknowledged).toBe(workers * perWorker); // with the busy timeout nothing even fails
}, 90_000);
