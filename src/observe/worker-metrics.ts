/**
 * /metrics over workers: worker 0 serves the admin listener, so it asks the supervisor, which
 * collects every worker's exposition over IPC and sums them (merge.ts). Without a supervisor the
 * process's own registry answers.
 */
import { mergeExpositions, monotonicPart } from "./merge.ts";
import { registry } from "./metrics.ts";

export type MetricsMessage =
  | { type: "metrics-request"; id: number }
  | { type: "metrics-collect"; id: number }
  | { type: "metrics-snapshot"; id: number; text: string }
  | { type: "metrics-result"; id: number; text: string };

const pending = new Map<number, (text: string) => void>();
let nextId = 1;

/** In a worker: answer the supervisor's collections, and receive merged results. */
export function listenAsWorker(): void {
  if (typeof process.send !== "function") return;
  process.on("message", (raw: unknown) => {
    const message = raw as MetricsMessage;
    if (message.type === "metrics-collect") process.send!({ type: "metrics-snapshot", id: message.id, text: registry.render() } satisfies MetricsMessage);
    else if (message.type === "metrics-result") {
      pending.get(message.id)?.(message.text);
      pending.delete(message.id);
    }
  });
}

/** The exposition for /metrics: the sum over all workers when supervised, else this process's. */
export function metricsText(): Promise<string> | string {
  if (typeof process.send !== "function" || process.env.SWITCHYARD_WORKER === undefined) return registry.render();
  const id = nextId++;
  return new Promise<string>((resolve) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      resolve(registry.render()); // the supervisor did not answer: this worker's own, rather than nothing
    }, 2000);
    pending.set(id, (text) => {
      clearTimeout(timer);
      resolve(text);
    });
    process.send!({ type: "metrics-request", id } satisfies MetricsMessage);
  });
}

/** A worker as the supervisor sees it: its index (stable across restarts) and its IPC channel. */
export interface MetricsPeer {
  index: number;
  send(message: MetricsMessage): void;
}

/**
 * In the supervisor: collect from every worker, merge (with the supervisor's own: the local
 * rate-limit buckets live there), answer the asking one. A worker's counters restart at 0 with the
 * worker, so the supervisor keeps each worker's last exposition: when the worker dies, its counters
 * and histograms are retired into a running sum that every later answer includes, and a live worker
 * that misses a collection is counted by its last answer. Sums over workers thus never go down (what
 * a worker counted after its last collection dies with it).
 */
export function superviseMetrics(workers: () => MetricsPeer[]) {
  const collections = new Map<number, { texts: Map<number, string>; expected: number[]; reply: (text: string) => void; timer: Timer }>();
  const lastSeen = new Map<number, string>(); // worker index → its last exposition
  let retired = ""; // counters and histograms of workers that have exited, summed
  let nextCollection = 1;
  const finish = (id: number) => {
    const c = collections.get(id);
    if (!c) return;
    clearTimeout(c.timer);
    collections.delete(id);
    const missing = c.expected.filter((index) => !c.texts.has(index)).map((index) => monotonicPart(lastSeen.get(index) ?? ""));
    c.reply(mergeExpositions([...c.texts.values(), ...missing, retired, registry.render()]));
  };
  return {
    onMessage(message: MetricsMessage, from: MetricsPeer): void {
      if (message.type === "metrics-request") {
        const all = workers();
        const id = nextCollection++;
        collections.set(id, { texts: new Map(), expected: all.map((w) => w.index), reply: (text) => from.send({ type: "metrics-result", id: message.id, text }), timer: setTimeout(() => finish(id), 1000) });
        for (const w of all) w.send({ type: "metrics-collect", id });
      } else if (message.type === "metrics-snapshot") {
        lastSeen.set(from.index, message.text);
        const c = collections.get(message.id);
        if (!c) return;
        c.texts.set(from.index, message.text);
        if (c.expected.every((index) => c.texts.has(index))) finish(message.id);
      }
    },
    /** A worker exited: its last counts stay in every sum from now on. */
    workerExited(index: number): void {
      const last = lastSeen.get(index);
      lastSeen.delete(index);
      if (last !== undefined) retired = mergeExpositions([retired, monotonicPart(last)]);
    },
  };
}
