/**
 * The one place per machine where rollouts are decided (worker 0, or the only process): every
 * look it gathers every worker's counts of the current step (sync.ts), lets the state machine
 * judge them (machine.ts), and puts a change in force — here, in the state file, then in every
 * other worker — with one log event and one count per transition. It also keeps the machine's
 * SLO windows (slo/tracker.ts). The other workers run a follower: they count, report and obey.
 */
import { metrics, rolloutGauges } from "../observe/metrics.ts";
import type { Slo } from "../slo/schema.ts";
import { SloTracker } from "../slo/tracker.ts";
import { addSide, REQUESTS, SIDE_SIZE, sideFigures } from "./figures.ts";
import { type Action, act, evaluate, type Figures, type Phase, type RolloutState, type SloTargets, type Transition } from "./machine.ts";
import { CANARY, type RolloutChange, type RolloutHandle, rollouts, STABLE, sloCounts } from "./registry.ts";
import { StateFile } from "./store.ts";
import { collectFromWorkers, listenForRollouts, requestRolloutSync, sendStates, type WorkerSnapshot } from "./sync.ts";
import { rolloutView, type RolloutView, type WorkerView } from "./view.ts";

/** What the controller needs of the config in force. */
export interface RolloutConfig {
  readonly state: { readonly path: string };
  readonly routes: readonly { readonly name?: string; readonly rollout?: unknown; readonly slo?: Slo }[];
}

const PHASES: readonly Phase[] = ["progressing", "paused", "promoted", "rolled_back"];
/** Processes not heard from for this long are forgotten (their step counts no longer count). */
const FORGET_AFTER_MS = 10 * 60_000;

function logEvent(fields: Record<string, unknown>): void {
  console.error(JSON.stringify({ time: new Date().toISOString(), ...fields }));
}

export interface ControllerOptions {
  /** Worker index (undefined: no workers). Worker 0 or the only process decides. */
  worker?: number;
  /** Wall-clock ms (injectable: tests move time without waiting). */
  now?: () => number;
  /** Look on a timer (default true); tests may call look() themselves. */
  timer?: boolean;
}

export class RolloutController {
  readonly deciding: boolean;
  private readonly now: () => number;
  private file: StateFile | undefined;
  private filePath: string | undefined;
  private timer: Timer | undefined;
  private looking: Promise<void> | undefined;
  private readonly slos = new SloTracker();
  private sloRoutes = new Map<string, Slo>();
  /** Each process's latest snapshot (by pid), when it came and in which look. */
  private readonly snapshots = new Map<number, { snapshot: WorkerSnapshot; at: number; look: number }>();
  private looks = 0;
  private readonly figures = new Map<string, Figures>();
  private stopped = false;
  private lookEveryMs = 0;
  /** The last look: when, how long collecting the other workers' counts took, how many answered. */
  private lastLook: { at: string; collect_ms: number; workers_answered: number } | null = null;

  constructor(private readonly options: ControllerOptions = {}) {
    this.deciding = options.worker === undefined || options.worker === 0;
    this.now = options.now ?? Date.now;
  }

  /**
   * Before the first runtime is built: opens the state file (when a route needs it) and hands its
   * saved rollouts to the registry, so the first requests already see the restored weights.
   */
  async start(config: RolloutConfig): Promise<void> {
    rollouts.listen((changes) => void this.onChanges(changes));
    rollouts.now = this.now;
    listenForRollouts({ snapshot: () => this.snapshot(), apply: (states) => this.applyFromController(states) }, this.deciding);
    this.registerGauges();
    await this.openFile(config);
    if (this.file !== undefined) {
      try {
        rollouts.preload(await this.file.rollouts());
      } catch (e) {
        logEvent({ level: "error", msg: "cannot read rollout states; rollouts start anew", path: this.filePath, error: String(e) });
      }
    }
  }

  /** After each runtime is in force: the SLOs to keep, and the look's pace. */
  async configure(config: RolloutConfig): Promise<void> {
    if (!this.deciding) return;
    await this.openFile(config);
    this.sloRoutes = new Map(config.routes.flatMap((r, i) => (r.slo !== undefined ? [[r.name ?? `route-${i}`, r.slo] as [string, Slo]] : [])));
    const added = this.slos.configure(this.sloRoutes);
    if (this.file !== undefined && added.length > 0) await this.slos.restore(this.file, added, this.now()).catch((e: unknown) => logEvent({ level: "error", msg: "cannot read SLO history", error: String(e) }));
    this.schedule();
  }

  private async openFile(config: RolloutConfig): Promise<void> {
    const needed = config.routes.some((r) => r.rollout !== undefined || r.slo !== undefined);
    if (!needed || this.file !== undefined) return;
    this.filePath = config.state.path;
    try {
      this.file = await StateFile.open(config.state.path);
    } catch (e) {
      logEvent({ level: "error", msg: "cannot open the state file; rollouts and SLO history are kept in memory only", path: config.state.path, error: String(e) });
    }
  }

  /** One look every tenth of the shortest step (at least 50 ms, at most 1 s). */
  private schedule(): void {
    if (this.options.timer === false) return;
    const steps = rollouts.all().map((h) => h.def.step_duration);
    const wanted = steps.length > 0 || this.sloRoutes.size > 0;
    clearInterval(this.timer);
    this.timer = undefined;
    if (!wanted) return;
    const every = Math.min(1000, Math.max(50, Math.min(...steps, 10_000) / 10));
    this.lookEveryMs = every;
    this.timer = setInterval(() => void this.look(), every);
    this.timer.unref?.();
  }

  /** At shutdown: no more looks; the SLO hours counted so far are saved. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopped = true;
    await this.looking;
    rollouts.listen(undefined);
    rollouts.now = Date.now;
    for (const key of Object.keys(rolloutGauges) as (keyof typeof rolloutGauges)[]) delete rolloutGauges[key];
    if (this.file !== undefined && this.deciding) await this.slos.save(this.file, this.now(), true).catch((e: unknown) => logEvent({ level: "error", msg: "cannot save SLO history", error: String(e) }));
  }

  /** This process's counts and states (for the controller's collection). */
  snapshot(): WorkerSnapshot {
    return {
      worker: this.options.worker ?? 0,
      pid: process.pid,
      rollouts: rollouts.all().map((h) => ({
        route: h.route, definition: h.definition, id: h.state.id, epoch: h.state.epoch, phase: h.state.phase, weight: h.weight, applied_at: h.appliedAt, counts: Array.from(h.counts),
      })),
      slo: sloCounts.entries().map(([route, counts]) => ({ route, counts: Array.from(counts) })),
    };
  }

  /** In a follower: the controller's states, for the rollouts this process runs with the same definition. */
  private applyFromController(states: { route: string; state: RolloutState }[]): void {
    for (const { route, state } of states) {
      const h = rollouts.get(route);
      if (h !== undefined && h.definition === state.definition) h.apply(state);
    }
  }

  private async onChanges(changes: RolloutChange[]): Promise<void> {
    if (!this.deciding) {
      requestRolloutSync(); // a reload here: the controller's word for the new runtime's rollouts
      return;
    }
    for (const { handle, replaced, restored } of changes) {
      const s = handle.state;
      if (restored) logEvent({ msg: "rollout restored", route: handle.route, rollout_id: s.id, state: s.phase, step: s.step + 1, weight: s.weight / 100 });
      else this.announce(handle, replaced !== undefined ? "restarted" : "started", replaced !== undefined ? "the rollout's definition changed" : null);
      await this.persist(handle);
    }
    sendStates(changes.map(({ handle }) => ({ route: handle.route, state: handle.state })));
    this.schedule();
  }

  private announce(handle: RolloutHandle, event: string, reason: string | null, figures?: Figures): void {
    const s = handle.state;
    metrics.rolloutTransitions.inc([handle.route, event]);
    logEvent({
      msg: `rollout ${event.replace("_", " ")}`, route: handle.route, event, rollout_id: s.id, state: s.phase, step: s.step + 1, steps: handle.def.steps.length,
      weight: s.weight / 100, stable: handle.def.stable, canary: handle.def.canary, reason: reason ?? s.reason, failed: s.failed, figures: figures ?? null,
    });
  }

  private async persist(handle: RolloutHandle): Promise<void> {
    await this.file?.saveRollout(handle.route, handle.state).catch((e: unknown) => logEvent({ level: "error", msg: "cannot save a rollout's state", route: handle.route, error: String(e) }));
  }

  /** Puts a transition in force: here, in the state file, in every worker; logged and counted once. */
  private async commit(handle: RolloutHandle, t: Transition, figures: Figures | undefined): Promise<void> {
    handle.apply(t.state);
    this.figures.set(handle.route, this.machineFigures(handle)); // the new epoch's: none yet
    this.announce(handle, t.event, null, figures);
    sendStates([{ route: handle.route, state: t.state }]);
    await this.persist(handle);
  }

  /**
   * One look: every process's counts, each progressing rollout judged, the SLO windows fed. Looks
   * never overlap (a slow collection makes the next one wait).
   */
  look(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.looking ??= this.lookOnce().finally(() => (this.looking = undefined));
    return this.looking;
  }

  private async lookOnce(): Promise<void> {
    const started = performance.now();
    const others = await collectFromWorkers();
    const now = this.now();
    this.lastLook = { at: new Date(now).toISOString(), collect_ms: Math.round((performance.now() - started) * 100) / 100, workers_answered: others.length };
    const all = [this.snapshot(), ...others];
    this.looks++;
    for (const snap of all) this.snapshots.set(snap.pid, { snapshot: snap, at: now, look: this.looks });
    for (const [pid, { at }] of this.snapshots) if (now - at > FORGET_AFTER_MS) this.snapshots.delete(pid);
    this.slos.add(all, now);
    this.slos.forget(new Set(this.snapshots.keys()));
    for (const handle of rollouts.all()) {
      const figures = this.machineFigures(handle);
      this.figures.set(handle.route, figures);
      const t = evaluate(handle.def, handle.state, figures, now, this.sloTargets(handle.route));
      if (t !== undefined) await this.commit(handle, t, figures);
    }
    if (this.file !== undefined) await this.slos.save(this.file, now).catch((e: unknown) => logEvent({ level: "error", msg: "cannot save SLO history", error: String(e) }));
  }

  /** The step's figures over every process: the latest counts each has of this run and epoch. */
  private machineFigures(handle: RolloutHandle): Figures {
    const sum = new Float64Array(2 * SIDE_SIZE);
    for (const { snapshot } of this.snapshots.values()) {
      const r = snapshot.rollouts.find((x) => x.route === handle.route);
      if (r === undefined || r.id !== handle.state.id || r.epoch !== handle.state.epoch) continue;
      addSide(sum, STABLE, r.counts, STABLE);
      addSide(sum, CANARY, r.counts, CANARY);
    }
    return { stable: sideFigures(sum, STABLE), canary: sideFigures(sum, CANARY) };
  }

  /** An operator's action (admin API). */
  async act(route: string, action: Action): Promise<{ ok: true; rollout: RolloutView } | { ok: false; status: 404 | 409; message: string }> {
    const handle = rollouts.get(route);
    if (handle === undefined) return { ok: false, status: 404, message: `no rollout on route "${route}" (rollouts: ${rollouts.all().map((h) => h.route).join(", ") || "none"})` };
    if (!this.deciding) return { ok: false, status: 409, message: "this process does not decide rollouts (worker 0 does)" };
    const figures = this.figures.get(route) ?? null;
    const t = act(handle.def, handle.state, action, this.now(), figures);
    if (typeof t === "string") return { ok: false, status: 409, message: t };
    await this.commit(handle, t, figures ?? undefined);
    return { ok: true, rollout: this.view(handle) };
  }

  /** What each live process has in force: as reported to the last look (this one: now). */
  private workers(handle: RolloutHandle): WorkerView[] {
    const own = this.snapshot();
    const answered = [...this.snapshots.values()].filter((s) => s.look === this.looks && s.snapshot.pid !== own.pid).map((s) => s.snapshot);
    const latest = [own, ...answered];
    return latest.flatMap((snapshot) => {
      const r = snapshot.rollouts.find((x) => x.route === handle.route);
      if (r === undefined) return [];
      return [{
        worker: snapshot.worker, pid: snapshot.pid, rollout_id: r.id, epoch: r.epoch, state: r.phase, weight: r.weight / 100, applied_at: new Date(r.applied_at).toISOString(),
        requests: { canary: r.counts[CANARY + REQUESTS] ?? 0, stable: r.counts[STABLE + REQUESTS] ?? 0 },
      }];
    }).sort((a, b) => a.worker - b.worker || a.pid - b.pid);
  }

  view(handle: RolloutHandle): RolloutView {
    return rolloutView(handle, this.figures.get(handle.route) ?? handle.localFigures(), this.workers(handle), this.now(), this.sloTargets(handle.route));
  }

  private sloTargets(route: string): SloTargets | undefined {
    const slo = this.sloRoutes.get(route);
    return slo === undefined ? undefined : { availability: slo.availability, latency: slo.latency };
  }

  views(): RolloutView[] {
    return rollouts.all().map((h) => this.view(h));
  }

  /** How the deciding process looks (GET /rollouts). */
  status(): { deciding: boolean; worker: number | null; look_every_ms: number; last_look: { at: string; collect_ms: number; workers_answered: number } | null } {
    return { deciding: this.deciding, worker: this.options.worker ?? null, look_every_ms: this.lookEveryMs, last_look: this.lastLook };
  }

  sloViews() {
    return this.slos.view(this.now());
  }

  private registerGauges(): void {
    rolloutGauges.weight = (set) => {
      for (const h of rollouts.all()) set([h.route], h.weight / 100);
    };
    rolloutGauges.state = (set) => {
      for (const h of rollouts.all()) for (const p of PHASES) set([h.route, p], h.state.phase === p ? 1 : 0);
    };
    rolloutGauges.step = (set) => {
      for (const h of rollouts.all()) set([h.route], h.state.step + 1);
    };
    if (!this.deciding) return;
    const bySide = (pick: (f: Figures["canary"]) => number) => (set: (labels: readonly string[], value: number) => void) => {
      for (const [route, f] of this.figures) {
        set([route, "canary"], pick(f.canary));
        set([route, "stable"], pick(f.stable));
      }
    };
    rolloutGauges.errorRate = bySide((f) => f.error_rate);
    rolloutGauges.p99 = bySide((f) => f.p99_ms / 1000);
    const eachSli = (fill: (route: string, sli: string, s: NonNullable<ReturnType<SloTracker["view"]>[number]["availability"]>, set: (labels: readonly string[], value: number) => void) => void) =>
      (set: (labels: readonly string[], value: number) => void) => {
        for (const v of this.sloViews()) {
          if (v.availability !== null) fill(v.route, "availability", v.availability, set);
          if (v.latency !== null) fill(v.route, "latency", v.latency, set);
        }
      };
    rolloutGauges.sloObjective = eachSli((route, sli, s, set) => set([route, sli], s.objective));
    rolloutGauges.sloBudget = eachSli((route, sli, s, set) => set([route, sli], s.budget_remaining));
    rolloutGauges.sloBurn = eachSli((route, sli, s, set) => {
      for (const [window, rate] of Object.entries(s.burn_rates)) set([route, sli, window], rate);
    });
  }
}
