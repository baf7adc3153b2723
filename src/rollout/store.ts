/**
 * Rollout states and SLO hours in the machine's state file (config `state.path`), through
 * store/client.ts. One writer per machine (the controller); every process reads at start.
 */
import { sharedStore, type Store } from "../store/client.ts";
import type { Totals } from "../slo/windows.ts";
import type { RolloutState } from "./machine.ts";

export class StateFile {
  private constructor(private readonly store: Store) {}

  static async open(path: string): Promise<StateFile> {
    return new StateFile(await sharedStore(path));
  }

  async rollouts(): Promise<Map<string, RolloutState>> {
    const rows = await this.store.execute("SELECT route, state FROM rollouts");
    const out = new Map<string, RolloutState>();
    for (const row of rows.rows) {
      try {
        out.set(String(row.route), JSON.parse(String(row.state)) as RolloutState);
      } catch {
        // An unreadable row starts its rollout anew.
      }
    }
    return out;
  }

  async saveRollout(route: string, state: RolloutState): Promise<void> {
    await this.store.execute(
      "INSERT INTO rollouts (route, definition, state, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (route) DO UPDATE SET definition = excluded.definition, state = excluded.state, updated_at = excluded.updated_at",
      [route, state.definition, JSON.stringify(state), Date.now() / 1000],
    );
  }

  async sloHours(key: string, fromHour: number): Promise<[number, Totals][]> {
    const rows = await this.store.execute("SELECT hour, requests, errors, slow FROM slo_hours WHERE slo_key = ? AND hour >= ?", [key, fromHour]);
    return rows.rows.map((r) => [Number(r.hour), [Number(r.requests), Number(r.errors), Number(r.slow)]]);
  }

  /** Writes whole hours (their totals so far) and drops hours older than `keepFromHour`. */
  async saveSloHours(key: string, hours: [number, Totals][], keepFromHour: number): Promise<void> {
    await this.store.batch([
      ...hours.map(([hour, t]) => ({
        sql: "INSERT INTO slo_hours (slo_key, hour, requests, errors, slow) VALUES (?, ?, ?, ?, ?) ON CONFLICT (slo_key, hour) DO UPDATE SET requests = excluded.requests, errors = excluded.errors, slow = excluded.slow",
        args: [key, hour, t[0], t[1], t[2]],
      })),
      { sql: "DELETE FROM slo_hours WHERE slo_key = ? AND hour < ?", args: [key, keepFromHour] },
    ]);
  }
}
