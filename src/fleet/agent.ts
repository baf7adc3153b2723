/**
 * The fleet agent: one per machine (the single process, or worker 0 — the one with the admin
 * listener). It reads the fleet's log (a Redis stream) as it grows, with a blocking read on a
 * connection of its own, and applies what it says: other instances' purges (through this machine's
 * HttpCache.purge, so every worker has them) and new fleet configs (through the config-push path,
 * so every worker has them), answering each config with ACK or NACK. After each purge batch it
 * records how far it applied the log, which is what a purging instance waits for. It sends this
 * instance's heartbeats, and keeps its own state on disk (state-file.ts).
 *
 * When Redis is lost (down, hung, restarted, failed over) the agent is out of sync: the machine's
 * in-sync flag lapses (purge.on_redis_failure decides whether cached entries are served), and on
 * its return the agent first catches up — the log entries it missed, the fleet config — before it
 * counts as in sync again. If it cannot tell what it missed (another Redis epoch, a log trimmed or
 * gone back past its position, no state of its own), purge.on_log_lost decides.
 */
import { ConfigError, configBaseDir, configDocument, validateLiteral } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { fleetState, metrics } from "../observe/metrics.ts";
import { configView, readConfig, restoreConfig, seedConfig, writeAnswer } from "./config.ts";
import { withLocalSections } from "./document.ts";
import { sendHeartbeat, removeHeartbeat, type LiveInstance, liveInstances } from "./heartbeat.ts";
import { compareIds } from "./keys.ts";
import { redactRedisUrl, redisScript } from "../util/redis-link.ts";
import { FleetRedis, logFleet } from "./redis.ts";
import { saveLocalState } from "./state-file.ts";
import { requestsTotal } from "./requests.ts";
import pkg from "../../package.json" with { type: "json" };
import type { FleetConfigView, FleetInstance, FleetView } from "./types.ts";
import type { Runtime } from "../proxy/context.ts";
import type { FleetServices } from "./types.ts";
import type { Answer } from "./answer-schema.ts";
import type { FleetConfigRecord, LocalState } from "./records-schema.ts";

/** How long one blocking read of the log waits for news; a hung Redis is noticed after this plus the timeout. */
const BLOCK_MS = 250;
/** After a read of the log, the machine counts as in sync for this long plus the Redis timeout (fleet.purge.ack_timeout must be longer). */
export const SYNC_MARGIN_MS = BLOCK_MS + 250;
/** Entries read at a time. */
const BATCH = 500;

// KEYS[1]: the epoch. ARGV[1]: a new one, set only when Redis has none (it is new, or lost its data).
const EPOCH = redisScript(`
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`);

type Entry = [id: string, fields: Record<string, string>];

function entries(raw: unknown): Entry[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((e: unknown): Entry => {
    const [id, flat] = Array.isArray(e) ? e : [];
    const fields: Record<string, string> = {};
    if (Array.isArray(flat)) for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1]);
    return [String(id), fields];
  });
}

/** A config put in force here: this process's config version, and how many workers have it. */
export interface Applied {
  version: number;
  workers: number;
}

export interface AgentDeps {
  services: FleetServices;
  runtime: () => Runtime;
  /** Puts a fleet config in force in every worker of this machine; throws when it cannot be built. */
  apply(next: Config, record: FleetConfigRecord): Promise<Applied>;
}

export class FleetAgent {
  /** The agent's commands (not the requests' connection: a busy proxy does not delay them). */
  readonly redis: FleetRedis;
  /** Blocking reads of the log. */
  private readonly reader: FleetRedis;
  private synced = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private heartbeatTimer: Timer | undefined;
  private saveTimer: Timer | undefined;
  private rps = 0;
  private lastCount: { requests: number; at: number } | undefined;
  /** Config answers and pushes, one at a time. */
  private configTurn: Promise<unknown> = Promise.resolve();
  private beats = 0;
  private duplicateLogged = false;
  /** This instance's answer to the last fleet config it saw (written again after Redis lost it). */
  private lastAnswer: Answer | undefined;

  constructor(private readonly deps: AgentDeps, readonly state: LocalState) {
    const r = deps.services.config.redis;
    this.redis = new FleetRedis({ url: r.url, timeoutMs: r.timeout, retryIntervalMs: r.retry_interval, role: "agent", reportsState: true });
    this.reader = new FleetRedis({ url: r.url, timeoutMs: r.timeout, retryIntervalMs: r.retry_interval, role: "log reader" });
  }

  get services(): FleetServices {
    return this.deps.services;
  }

  private get fleet(): FleetServices {
    return this.deps.services;
  }

  /** Catches up once (each call bounded by the Redis timeout: a Redis that is down costs one timeout), then reads on in the background. */
  async start(): Promise<void> {
    fleetState.agent = true;
    fleetState.fleetVersion = this.state.config?.version ?? 0;
    this.fleet.sync.set(0); // the file outlives processes: a previous run's window means nothing now
    this.fleet.sync.appliedGeneration = this.state.generation ?? 0;
    await this.resync().catch((e: unknown) => this.outOfSync(e));
    await this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.fleet.config.heartbeat.interval);
    this.saveTimer = setInterval(() => saveLocalState(this.fleet.config.state_path, this.state), 1000);
    this.loop = this.read();
  }

  /** One config turn at a time (answers to the log, pushes made here). */
  serialized<T>(run: () => Promise<T>): Promise<T> {
    const turn = this.configTurn.then(run, run);
    this.configTurn = turn.catch(() => {});
    return turn;
  }

  private async read(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!this.synced) await this.resync();
        const reply = await this.reader.call("log", "XREAD", ["COUNT", String(BATCH), "BLOCK", String(BLOCK_MS), "STREAMS", this.fleet.keys.log, this.state.applied ?? "0-0"], BLOCK_MS + this.reader.timeoutMs);
        this.inSync();
        const stream = reply !== null && typeof reply === "object" && !Array.isArray(reply) ? (reply as Record<string, unknown>)[this.fleet.keys.log] : undefined;
        const batch = entries(stream);
        if (batch.length > 0) await this.apply(batch, "live");
      } catch (e) {
        if (this.stopped) break;
        this.outOfSync(e);
        await Bun.sleep(this.fleet.config.redis.retry_interval);
      }
    }
  }

  private inSync(): void {
    const wasOut = !this.synced;
    this.synced = true;
    fleetState.inSync = 1;
    this.fleet.sync.set(Date.now() + SYNC_MARGIN_MS + this.reader.timeoutMs);
    if (wasOut && this.loop !== undefined) logFleet({ msg: "fleet: in sync again (missed purges and config applied)", instance: this.fleet.self.id });
  }

  private outOfSync(e: unknown): void {
    if (this.synced || this.loop === undefined) logFleet({ level: "warn", msg: "fleet: out of sync; purges and configs apply once redis is back", instance: this.fleet.self.id, error: String((e as Error)?.message ?? e) });
    this.synced = false;
    fleetState.inSync = 0;
    this.fleet.sync.set(0);
  }

  /** After a start or an outage: catch up with the log and the fleet config before reading on. */
  private async resync(): Promise<void> {
    const keys = this.fleet.keys;
    const epoch = String(await this.redis.eval("log", EPOCH, [keys.epoch], [crypto.randomUUID()]));
    const info = await this.streamInfo();
    const applied = this.state.applied ?? "0-0";
    const lost = this.state.epoch !== epoch
      || (info === undefined ? applied !== "0-0" : compareIds(info.maxDeleted, applied) > 0 || compareIds(applied, info.last) > 0);
    if (lost) await this.logLost(info?.last ?? "0-0", this.state.epoch === undefined ? "its first start with this fleet: no fleet state file here" : this.state.epoch !== epoch ? "redis lost its data (another epoch)" : "the log no longer holds what it missed");
    else {
      for (;;) {
        const batch = entries(await this.redis.call("log", "XRANGE", [keys.log, `(${this.state.applied ?? "0-0"}`, "+", "COUNT", String(BATCH)]));
        if (batch.length === 0) break;
        await this.apply(batch, "catch_up");
      }
    }
    this.state.epoch = epoch;
    await this.redis.call("log", "HSET", [keys.applied, this.fleet.self.id, this.state.applied ?? "0-0"]);
    await this.serialized(() => this.catchUpConfig(true));
    saveLocalState(this.fleet.config.state_path, this.state);
    this.inSync();
  }

  /** Where the log is: its last id, and the last id trimmed from it (Redis 7); undefined when there is no log. */
  private async streamInfo(): Promise<{ last: string; maxDeleted: string } | undefined> {
    if (!(await this.redis.call("log", "EXISTS", [this.fleet.keys.log]))) return undefined;
    const info = await this.redis.call("log", "XINFO", ["STREAM", this.fleet.keys.log]);
    const fields = (info ?? {}) as Record<string, unknown>;
    return { last: String(fields["last-generated-id"] ?? "0-0"), maxDeleted: String(fields["max-deleted-entry-id"] ?? "0-0") };
  }

  private async logLost(last: string, why: string): Promise<void> {
    const action = this.fleet.config.purge.on_log_lost;
    metrics.fleetPurgeLogLost.inc([action]);
    logFleet({ level: "warn", msg: `fleet: cannot tell which purges this instance missed (${why}); ${action === "clear" ? "its caches are emptied" : "its caches are kept (purge.on_log_lost: keep)"}`, instance: this.fleet.self.id });
    if (action === "clear") for (const cache of this.deps.runtime().caches.values()) await cache.purge({ prefix: "" });
    this.state.applied = last;
    this.appliedGeneration(Number((await this.redis.call("log", "GET", [this.fleet.keys.purgeGeneration])) ?? 0));
  }

  /** Applies log entries in order; a purge that fails stops here (read again after a resync). */
  private async apply(batch: Entry[], via: "live" | "catch_up"): Promise<void> {
    let config = false;
    for (const [id, f] of batch) {
      if (f.t === "purge" && f.from !== this.fleet.self.id) {
        const cache = this.deps.runtime().caches.get(f.cache ?? "");
        if (cache !== undefined && (f.kind === "key" || f.kind === "prefix" || f.kind === "tag")) {
          await cache.purge({ [f.kind]: f.value ?? "" });
          metrics.fleetPurgesApplied.inc([via]);
        }
      } else if (f.t === "config" && f.from !== this.fleet.self.id) config = true;
      if (f.t === "purge" && f.g !== undefined) this.appliedGeneration(Number(f.g));
      this.state.applied = id;
    }
    await this.redis.call("log", "HSET", [this.fleet.keys.applied, this.fleet.self.id, this.state.applied ?? "0-0"]);
    // Not awaited: a push being answered here holds the config turn for up to its ack_timeout, and
    // the purges behind this batch must not wait for it. It reads the latest config when its turn comes.
    if (config) void this.serialized(() => this.catchUpConfig(false)).catch((e: unknown) => logFleet({ level: "warn", msg: "fleet: the fleet config could not be read; tried again at the next announcement or reconnection", error: String(e) }));
  }

  private appliedGeneration(generation: number): void {
    this.state.generation = generation;
    this.fleet.sync.appliedGeneration = generation;
  }

  /**
   * The fleet config in Redis, put in force here when it is one this instance has not answered.
   * Redis with none (restarted empty) gets this instance's back, for instances that start later.
   */
  async catchUpConfig(rewriteAnswer: boolean): Promise<void> {
    const record = await readConfig(this.fleet.keys, this.redis);
    if (record === undefined) {
      if (this.state.config !== undefined && (await seedConfig(this.fleet.keys, this.redis, this.state.config))) {
        logFleet({ msg: "fleet: redis had no fleet config; this instance's put back", version: this.state.config.version });
      }
      if (rewriteAnswer) await this.writeOwnAnswer();
      return;
    }
    if (record.id === this.state.answered?.id) {
      if (rewriteAnswer) await this.writeOwnAnswer();
      return;
    }
    // Older than one answered here: Redis went back (a failover to a replica without the latest).
    // The newer one this instance runs is put back rather than the fleet going back with Redis.
    const running = this.state.config;
    if (record.version <= (this.state.answered?.version ?? 0) && running !== undefined && running.version >= record.version) {
      if (await restoreConfig(this.fleet, this.redis, record.id, running)) {
        logFleet({ level: "warn", msg: "fleet: redis had an older fleet config than this instance runs (failed over?); this instance's put back", redis_version: record.version, fleet_version: running.version });
      }
      if (rewriteAnswer) await this.writeOwnAnswer();
      return;
    }
    await this.answer(record);
  }

  private async writeOwnAnswer(): Promise<void> {
    if (this.lastAnswer !== undefined) await writeAnswer(this.fleet.keys, this.redis, this.fleet.self.id, this.lastAnswer);
  }

  /** Validates the fleet's part with this instance's own sections and puts it in force: ACK, or NACK with why. */
  async answer(record: FleetConfigRecord): Promise<{ answer: Answer; applied?: Applied }> {
    const current = this.deps.runtime().config;
    let problem: string | undefined;
    let applied: Applied | undefined;
    try {
      const next = validateLiteral(`(fleet config version ${record.version})`, withLocalSections(record.document, configDocument(current)), { baseDir: configBaseDir(current) });
      applied = await this.deps.apply(next, record);
      this.state.config = record;
    } catch (e) {
      problem = e instanceof ConfigError ? e.problems.join("\n") : String((e as Error)?.message ?? e);
      logFleet({ level: "error", msg: "fleet: a fleet config was refused here; the config in force stays", fleet_version: record.version, problems: problem });
    }
    metrics.fleetConfigAnswers.inc([problem === undefined ? "ack" : "nack"]);
    this.state.answered = { id: record.id, version: record.version };
    fleetState.fleetVersion = this.state.config?.version ?? 0;
    saveLocalState(this.fleet.config.state_path, this.state);
    const answer: Answer = {
      fleet_version: record.version, id: record.id, answer: problem === undefined ? "ack" : "nack", message: problem ?? null,
      version: this.deps.runtime().version, running_fleet_version: this.state.config?.version ?? 0, region: this.fleet.self.region ?? null,
    };
    this.lastAnswer = answer;
    await writeAnswer(this.fleet.keys, this.redis, this.fleet.self.id, answer).catch(() => {});
    return { answer, applied };
  }

  private async heartbeat(): Promise<void> {
    const requests = await requestsTotal();
    const at = performance.now();
    if (this.lastCount !== undefined && at > this.lastCount.at) this.rps = Math.round(((requests - this.lastCount.requests) / ((at - this.lastCount.at) / 1000)) * 10) / 10;
    this.lastCount = { requests, at };
    const self = this.fleet.self;
    try {
      const replaced = await sendHeartbeat(this.redis, this.fleet.keys, {
        id: self.id, region: self.region ?? null, boot: self.boot, software: pkg.version, started: self.startedAt,
        requests_per_second: this.rps, config_version: this.deps.runtime().version, fleet_version: this.state.config?.version ?? 0,
      }, this.fleet.config.heartbeat.ttl);
      // After our own first heartbeat, one from another process under our id: two instances share it.
      if (this.beats++ > 0 && replaced !== undefined && replaced.boot !== self.boot && !this.duplicateLogged) {
        this.duplicateLogged = true;
        logFleet({ level: "error", msg: "fleet: another instance uses this instance's id; give each its own FLY_MACHINE_ID (or host name)", instance: self.id, other_started: replaced.started });
      }
      fleetState.liveInstances = (await liveInstances(this.redis, this.fleet.keys, this.fleet.config.heartbeat.ttl)).length;
    } catch {
      // counted (switchyard_fleet_redis_errors_total{feature="heartbeat"}); the next one tries again
    }
  }

  /** GET /fleet: the live instances by their heartbeats; with Redis unreachable, this one as it knows itself. */
  async view(): Promise<FleetView> {
    const self = this.fleet.self;
    const redis = { url: redactRedisUrl(this.fleet.config.redis.url), reachable: true };
    let live: LiveInstance[];
    let version: unknown;
    try {
      [live, version] = await Promise.all([
        liveInstances(this.redis, this.fleet.keys, this.fleet.config.heartbeat.ttl),
        this.redis.call("config", "HGET", [this.fleet.keys.config, "version"]),
      ]);
    } catch (e) {
      const own: FleetInstance = {
        id: self.id, region: self.region ?? null, version: pkg.version, started: self.startedAt, last_heartbeat: new Date().toISOString(),
        requests_per_second: this.rps, config: { version: this.deps.runtime().version, fleet_version: this.state.config?.version ?? 0 }, self: true,
      };
      return { self: self.id, redis: { ...redis, reachable: false, error: (e as Error).message }, fleet_version: this.state.config?.version ?? 0, instances: [own] };
    }
    const instances = live.sort((a, b) => (a.id < b.id ? -1 : 1)).map((l): FleetInstance => ({
      id: l.id, region: l.beat?.region ?? null, version: l.beat?.software ?? "", started: l.beat?.started ?? "", last_heartbeat: new Date(l.lastMs).toISOString(),
      requests_per_second: l.beat?.requests_per_second ?? 0, config: { version: l.beat?.config_version ?? 0, fleet_version: l.beat?.fleet_version ?? 0 }, self: l.id === self.id,
    }));
    return { self: self.id, redis, fleet_version: Number(version ?? 0) || 0, instances };
  }

  /** GetConfig: the fleet config's version and each live instance's answer (throws when Redis cannot say). */
  configView(): Promise<FleetConfigView> {
    return configView(this.fleet, this.redis);
  }

  /** Shutdown: stops reading, leaves the live set (no purge waits for a drained instance), saves its state. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearInterval(this.saveTimer);
    this.reader.dispose();
    await this.loop;
    this.fleet.sync.set(0);
    await removeHeartbeat(this.redis, this.fleet.keys, this.fleet.self.id).catch(() => {});
    saveLocalState(this.fleet.config.state_path, this.state);
    this.redis.dispose();
  }
}
