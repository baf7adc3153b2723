/**
 * Rollouts over workers: one decision for the machine. Worker 0 runs the controller (it also
 * serves the admin API, where operators pause or promote); the others only count and obey.
 *
 * - Each look, the controller asks the supervisor to collect every other worker's counts
 *   (`rollout-collect`); the supervisor asks them, gathers the answers (or stops waiting after
 *   COLLECT_TIMEOUT_MS) and hands them back in one message (`rollout-collected`).
 * - A decision goes out as `rollout-state`: the supervisor passes it to every other worker and
 *   keeps the latest per route for a worker that starts or reloads later (`rollout-sync`).
 *
 * Counts are cumulative per epoch in each worker (reset when a new state changes step or
 * weight), so an answer that comes late or never costs freshness, not counts.
 */
import type { Phase, RolloutState } from "./machine.ts";

export interface WorkerSnapshot {
  worker: number;
  pid: number;
  rollouts: { route: string; definition: string; id: string; epoch: number; phase: Phase; weight: number; applied_at: number; counts: number[] }[];
  /** Cumulative since the process started: [requests, errors, slow] per SLO route. */
  slo: { route: string; counts: number[] }[];
}

export type RolloutMessage =
  | { type: "rollout-collect"; id: number } // controller → supervisor
  | { type: "rollout-report"; id: number } // supervisor → other workers
  | { type: "rollout-snapshot"; id: number; snapshot: WorkerSnapshot } // worker → supervisor
  | { type: "rollout-collected"; id: number; snapshots: WorkerSnapshot[] } // supervisor → controller
  | { type: "rollout-state"; states: { route: string; state: RolloutState }[] } // controller → supervisor → others
  | { type: "rollout-sync" }; // a worker that started or reloaded → supervisor (answers with rollout-state)

export const COLLECT_TIMEOUT_MS = 500;

const isRolloutMessage = (m: unknown): m is RolloutMessage =>
  m !== null && typeof m === "object" && typeof (m as { type?: unknown }).type === "string" && (m as { type: string }).type.startsWith("rollout-");

const supervised = () => typeof process.send === "function" && process.env.SWITCHYARD_WORKER !== undefined;

export interface WorkerSide {
  /** This process's counts and applied states. */
  snapshot(): WorkerSnapshot;
  /** States decided by the controller (ignored for definitions this process does not run). */
  apply(states: { route: string; state: RolloutState }[]): void;
}

const collecting = new Map<number, (snapshots: WorkerSnapshot[]) => void>();
let nextId = 1;

/** In a worker: answer the supervisor's collections, take the controller's states (the controller takes none: it decides them). */
export function listenForRollouts(side: WorkerSide, controller: boolean): void {
  if (!supervised()) return;
  process.on("message", (raw: unknown) => {
    if (!isRolloutMessage(raw)) return;
    if (raw.type === "rollout-report") process.send!({ type: "rollout-snapshot", id: raw.id, snapshot: side.snapshot() } satisfies RolloutMessage);
    else if (raw.type === "rollout-state" && !controller) side.apply(raw.states);
    else if (raw.type === "rollout-collected") {
      collecting.get(raw.id)?.(raw.snapshots);
      collecting.delete(raw.id);
    }
  });
  if (!controller) requestRolloutSync();
}

/** In a worker: ask for the controller's latest states (at start, after a reload). */
export function requestRolloutSync(): void {
  if (supervised()) process.send!({ type: "rollout-sync" } satisfies RolloutMessage);
}

/** In the controller: the other workers' snapshots ([] without workers). */
export function collectFromWorkers(): Promise<WorkerSnapshot[]> {
  if (!supervised()) return Promise.resolve([]);
  const id = nextId++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      collecting.delete(id);
      resolve([]);
    }, COLLECT_TIMEOUT_MS * 2 + 500);
    collecting.set(id, (snapshots) => {
      clearTimeout(timer);
      resolve(snapshots);
    });
    process.send!({ type: "rollout-collect", id } satisfies RolloutMessage);
  });
}

/** In the controller: hand states to every other worker. */
export function sendStates(states: { route: string; state: RolloutState }[]): void {
  if (supervised() && states.length > 0) process.send!({ type: "rollout-state", states } satisfies RolloutMessage);
}

interface Peer {
  index: number;
  send(message: RolloutMessage): void;
}

/** In the supervisor: relays between the controller (worker 0) and the others. False for messages not its own. */
export function superviseRollouts(workers: () => Peer[]) {
  const latest = new Map<string, RolloutState>();
  const rounds = new Map<number, { snapshots: WorkerSnapshot[]; pending: Set<number>; finish: () => void }>();
  let nextRound = 1;
  return (message: unknown, from: Peer): boolean => {
    if (!isRolloutMessage(message)) return false;
    if (message.type === "rollout-collect") {
      const others = workers().filter((w) => w.index !== from.index);
      const round = nextRound++;
      const snapshots: WorkerSnapshot[] = [];
      const pending = new Set(others.map((w) => w.index));
      const finish = () => {
        clearTimeout(timer);
        if (!rounds.delete(round)) return;
        from.send({ type: "rollout-collected", id: message.id, snapshots });
      };
      const timer = setTimeout(finish, COLLECT_TIMEOUT_MS);
      rounds.set(round, { snapshots, pending, finish });
      if (pending.size === 0) finish();
      for (const w of others) w.send({ type: "rollout-report", id: round });
    } else if (message.type === "rollout-snapshot") {
      const r = rounds.get(message.id);
      if (r === undefined || !r.pending.delete(from.index)) return true;
      r.snapshots.push(message.snapshot);
      if (r.pending.size === 0) r.finish();
    } else if (message.type === "rollout-state") {
      for (const { route, state } of message.states) latest.set(route, state);
      for (const w of workers()) if (w.index !== from.index) w.send(message);
    } else if (message.type === "rollout-sync") {
      if (latest.size > 0) from.send({ type: "rollout-state", states: [...latest].map(([route, state]) => ({ route, state })) });
    }
    return true;
  };
}
