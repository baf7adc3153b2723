/**
 * A pushed config (admin API, config service) reaches every worker. The admin listener lives in
 * worker 0: it validates and applies the push, then sends the validated document to the
 * supervisor, which hands it to the other workers; each re-validates it (the same rules, without
 * `${VAR}` substitution) and swaps, and the supervisor answers worker 0 with how many have it in
 * force. The supervisor keeps the last push for a worker that restarts, until a reload from the
 * file replaces it (a file reload puts the file's config back, as without workers).
 */

type Document = Record<string, unknown>;

export interface Push {
  document: Document;
  source: string;
  versionInfo?: string;
  /** With a fleet: the fleet config's part of `document`, which a reload from the file keeps (fleet/document.ts). */
  fleet?: Document;
}

export type ConfigSyncMessage =
  | ({ type: "config-push"; id: number } & Push) // worker 0 → supervisor
  | ({ type: "config-apply"; id: number } & Push) // supervisor → the other workers
  | { type: "config-applied"; id: number; error?: string } // worker → supervisor
  | { type: "config-push-result"; id: number; workers: number; failed: string[] } // supervisor → worker 0
  | { type: "config-sync" } // a (re)started worker asks for the last push
  | { type: "config-from-file" }; // a worker reloaded its file: the last push is no longer in force

export interface PushResult {
  /** Processes that have the pushed config in force, this one included. */
  workers: number;
  /** Workers that do not, with the reason. */
  failed: string[];
}

/** How long worker 0 waits for the others before answering the push. */
const FANOUT_TIMEOUT_MS = 5000;

const isSyncMessage = (m: unknown): m is ConfigSyncMessage =>
  m !== null && typeof m === "object" && typeof (m as { type?: unknown }).type === "string" && (m as { type: string }).type.startsWith("config-");

const supervised = () => typeof process.send === "function" && process.env.SWITCHYARD_WORKER !== undefined;

const waiting = new Map<number, (result: PushResult) => void>();
let nextId = 1;

/**
 * In a worker: apply the pushes the supervisor relays (`apply` validates and swaps, throwing when
 * it cannot), and ask for the last one at start.
 */
export function listenForPushes(apply: (push: Push) => void): void {
  if (!supervised()) return;
  process.on("message", (raw: unknown) => {
    if (!isSyncMessage(raw)) return;
    if (raw.type === "config-apply") {
      let error: string | undefined;
      try {
        apply(raw);
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      process.send!({ type: "config-applied", id: raw.id, error } satisfies ConfigSyncMessage);
    } else if (raw.type === "config-push-result") {
      waiting.get(raw.id)?.({ workers: raw.workers, failed: raw.failed });
      waiting.delete(raw.id);
    }
  });
  process.send!({ type: "config-sync" } satisfies ConfigSyncMessage);
}

/** In the worker that took a push (and already applied it): hand it to the others and wait for them. */
export function pushToWorkers(push: Push): Promise<PushResult> {
  if (!supervised()) return Promise.resolve({ workers: 1, failed: [] });
  const id = nextId++;
  return new Promise<PushResult>((resolve) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      resolve({ workers: 1, failed: ["the supervisor did not answer"] });
    }, FANOUT_TIMEOUT_MS + 1000);
    waiting.set(id, (result) => {
      clearTimeout(timer);
      resolve(result);
    });
    process.send!({ type: "config-push", id, ...push } satisfies ConfigSyncMessage);
  });
}

/** In a worker, after a reload from the file: the supervisor forgets the last push. */
export function reportFileReload(): void {
  if (supervised()) process.send!({ type: "config-from-file" } satisfies ConfigSyncMessage);
}

interface Worker {
  index: number;
  send(message: ConfigSyncMessage): void;
}

/** In the supervisor: relays pushes between workers. Returns false for messages that are not its own. */
export function superviseConfig(workers: () => Worker[]) {
  let last: Push | undefined;
  const rounds = new Map<number, { pending: Set<number>; done: (index: number, error?: string) => void }>();
  let nextRound = 1;
  return (message: unknown, from: Worker): boolean => {
    if (!isSyncMessage(message)) return false;
    if (message.type === "config-push") {
      const { document, source, versionInfo, fleet } = message;
      last = { document, source, versionInfo, fleet };
      const others = workers().filter((w) => w.index !== from.index);
      const round = nextRound++;
      const failed: string[] = [];
      let applied = 1;
      const finish = () => {
        clearTimeout(timer);
        rounds.delete(round);
        for (const index of pending) failed.push(`worker ${index}: no answer within ${FANOUT_TIMEOUT_MS} ms`);
        from.send({ type: "config-push-result", id: message.id, workers: applied, failed });
      };
      const pending = new Set(others.map((w) => w.index));
      const timer = setTimeout(finish, FANOUT_TIMEOUT_MS);
      rounds.set(round, {
        pending,
        done(index, error) {
          if (!pending.delete(index)) return;
          if (error === undefined) applied++;
          else failed.push(`worker ${index}: ${error}`);
          if (pending.size === 0) finish();
        },
      });
      if (pending.size === 0) finish();
      for (const w of others) w.send({ type: "config-apply", id: round, ...last });
    } else if (message.type === "config-applied") {
      rounds.get(message.id)?.done(from.index, message.error);
    } else if (message.type === "config-sync") {
      if (last) from.send({ type: "config-apply", id: 0, ...last });
    } else if (message.type === "config-from-file") {
      last = undefined;
    }
    return true;
  };
}
