/**
 * /metrics over workers: worker 0 serves the admin listener, so it asks the supervisor, which
 * collects every worker's exposition over IPC and sums them (merge.ts). Without a supervisor the
 * process's own registry answers.
 */
import { mergeExpositions } from "./merge.ts";
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

/** In the supervisor: collect from every worker, merge (with the supervisor's own: the local rate-limit buckets live there), answer the asking one. */
export function superviseMetrics(workers: () => { send(message: MetricsMessage): void }[]) {
  const collections = new Map<number, { texts: string[]; expected: number; reply: (text: string) => void; timer: Timer }>();
  let nextCollection = 1;
  return (message: MetricsMessage, from: { send(message: MetricsMessage): void }) => {
    if (message.type === "metrics-request") {
      const all = workers();
      const id = nextCollection++;
      const finish = () => {
        const c = collections.get(id);
        if (!c) return;
        clearTimeout(c.timer);
        collections.delete(id);
        c.reply(mergeExpositions([...c.texts, registry.render()]));
      };
      collections.set(id, { texts: [], expected: all.length, reply: (text) => from.send({ type: "metrics-result", id: message.id, text }), timer: setTimeout(finish, 1000) });
      for (const w of all) w.send({ type: "metrics-collect", id });
    } else if (message.type === "metrics-snapshot") {
      const c = collections.get(message.id);
      if (!c) return;
      c.texts.push(message.text);
      if (c.texts.length >= c.expected) {
        clearTimeout(c.timer);
        collections.delete(message.id);
        c.reply(mergeExpositions([...c.texts, registry.render()]));
      }
    }
  };
}
