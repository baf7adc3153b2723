/**
 * /metrics over workers: worker 0 serves the admin listener, so it asks the supervisor, which
 * collects every worker's exposition over IPC and sums them (merge.ts). Without a supervisor the
 * process's own registry answers. Each worker's answer also carries its endpoints' last failures
 * (what a counter cannot say: the error's code and message), for the status page.
 */
import { mergeExpositions, monotonicPart } from "./merge.ts";
import { registry } from "./metrics.ts";

/** An endpoint's last failed try, as one process saw it. */
export interface EndpointFailure {
  cluster: string;
  endpoint: string;
  /** ms since the epoch. */
  at: number;
  code: string;
  message: string;
}

/** The machine's metrics: the exposition summed over workers, and each endpoint's latest failure over them. */
export interface MachineMetrics {
  text: string;
  failures: EndpointFailure[];
}

export type MetricsMessage =
  | { type: "metrics-request"; id: number }
  | { type: "metrics-collect"; id: number }
  | { type: "metrics-snapshot"; id: number; text: string; failures?: EndpointFailure[] }
  | { type: "metrics-result"; id: number; text: string; failures?: EndpointFailure[] };

/** Where this process's endpoint failures are read from (main.ts sets it to the live runtime's). */
let localFailures: () => EndpointFailure[] = () => [];

export function setLocalFailures(read: () => EndpointFailure[]): void {
  localFailures = read;
}

/** The latest failure of each endpoint over several processes' lists. */
export function latestFailures(lists: readonly (readonly EndpointFailure[])[]): EndpointFailure[] {
  const latest = new Map<string, EndpointFailure>();
  for (const list of lists) {
    for (const f of list) {
      const key = `${f.cluster}\u0000${f.endpoint}`;
      const before = latest.get(key);
      if (before === undefined || f.at > before.at) latest.set(key, f);
    }
  }
  return [...latest.values()];
}

const pending = new Map<number, (result: MachineMetrics) => void>();
let nextId = 1;

/** In a worker: answer the supervisor's collections, and receive merged results. */
export function listenAsWorker(): void {
  if (typeof process.send !== "function") return;
  process.on("message", (raw: unknown) => {
    const message = raw as MetricsMessage;
    if (message.type === "metrics-collect") process.send!({ type: "metrics-snapshot", id: message.id, text: registry.render(), failures: localFailures() } satisfies MetricsMessage);
    else if (message.type === "metrics-result") {
      pending.get(message.id)?.({ text: message.text, failures: message.failures ?? [] });
      pending.delete(message.id);
    }
  });
}

/** The exposition for /metrics: the sum over all workers when supervised, else this process's. */
export function metricsText(): Promise<string> | string {
  const machine = machineMetrics();
  return machine instanceof Promise ? machine.then((m) => m.text) : machine.text;
}

/** The exposition and the endpoints' last failures: over all workers when supervised, else this process's. */
export function machineMetrics(): Promise<MachineMetrics> | MachineMetrics {
  const own = (): MachineMetrics => ({ text: registry.render(), failures: localFailures() });
  if (typeof process.send !== "function" || process.env.SWITCHYARD_WORKER === undefined) return own();
  const id = nextId++;
  return new Promise<MachineMetrics>((resolve) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      resolve(own()); // the supervisor did not answer: this worker's own, rather than nothing
    }, 2000);
    pending.set(id, (result) => {
      clearTimeout(timer);
      resolve(result);
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
  const collections = new Map<number, { texts: Map<number, string>; failures: EndpointFailure[][]; expected: number[]; reply: (result: MachineMetrics) => void; timer: Timer }>();
  const lastSeen = new Map<number, { text: string; failures: EndpointFailure[] }>(); // worker index → its last answer
  let retired = ""; // counters and histograms of workers that have exited, summed
  let retiredFailures: EndpointFailure[] = []; // and the last failures they saw
  let nextCollection = 1;
  const finish = (id: number) => {
    const c = collections.get(id);
    if (!c) return;
    clearTimeout(c.timer);
    collections.delete(id);
    const missing = c.expected.filter((index) => !c.texts.has(index));
    const missingTexts = missing.map((index) => monotonicPart(lastSeen.get(index)?.text ?? ""));
    const missingFailures = missing.map((index) => lastSeen.get(index)?.failures ?? []);
    c.reply({
      text: mergeExpositions([...c.texts.values(), ...missingTexts, retired, registry.render()]),
      failures: latestFailures([...c.failures, ...missingFailures, retiredFailures]),
    });
  };
  return {
    onMessage(message: MetricsMessage, from: MetricsPeer): void {
      if (message.type === "metrics-request") {
        const all = workers();
        const id = nextCollection++;
        const reply = (result: MachineMetrics) => from.send({ type: "metrics-result", id: message.id, ...result });
        collections.set(id, { texts: new Map(), failures: [], expected: all.map((w) => w.index), reply, timer: setTimeout(() => finish(id), 1000) });
        for (const w of all) w.send({ type: "metrics-collect", id });
      } else if (message.type === "metrics-snapshot") {
        const failures = message.failures ?? [];
        lastSeen.set(from.index, { text: message.text, failures });
        const c = collections.get(message.id);
        if (!c) return;
        c.texts.set(from.index, message.text);
        c.failures.push(failures);
        if (c.expected.every((index) => c.texts.has(index))) finish(message.id);
      }
    },
    /** A worker exited: its last counts (and the failures it saw) stay in every answer from now on. */
    workerExited(index: number): void {
      const last = lastSeen.get(index);
      lastSeen.delete(index);
      if (last === undefined) return;
      retired = mergeExpositions([retired, monotonicPart(last.text)]);
      retiredFailures = latestFailures([retiredFailures, last.failures]);
    },
  };
}
