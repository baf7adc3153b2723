/**
 * A config pushed or PUT to this instance, with a fleet: validated here (by the caller), then its
 * fleet part recorded in Redis as the next fleet config version — refused if another push reached
 * the fleet first (409) or Redis cannot record it (503: nothing changed anywhere, as a fleet that
 * diverged silently would be worse) — then put in force here like any instance's answer, and the
 * push is answered once every live instance has answered too (or config.ack_timeout passed).
 */
import { configDocument } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { metrics } from "../observe/metrics.ts";
import { SwitchyardError } from "../util/errors.ts";
import type { FleetAgent, Applied } from "./agent.ts";
import { awaitAnswers, publishConfig } from "./config.ts";
import { fleetDocument } from "./document.ts";
import { RedisUnavailable } from "../util/redis-link.ts";
import type { FleetPushReport } from "./types.ts";

export function pushToFleet(agent: FleetAgent, next: Config, source: string, versionInfo: string | undefined): Promise<Applied & { fleet: FleetPushReport }> {
  const fleet = agent.services;
  return agent.serialized(async () => {
    const record = { id: crypto.randomUUID(), document: fleetDocument(configDocument(next)), version_info: versionInfo ?? "", source, origin: fleet.self.id };
    let published: Awaited<ReturnType<typeof publishConfig>>;
    try {
      published = await publishConfig(fleet, agent.redis, agent.state.answered, record);
    } catch (e) {
      if (!(e instanceof RedisUnavailable)) throw e;
      metrics.fleetConfigPublished.inc(["unavailable"]);
      throw new SwitchyardError({ code: "fleet_unavailable", status: 503, source: "internal", message: `the fleet config cannot be recorded (${e.message}); nothing changed on any instance`, cause: e });
    }
    if (!published.published) {
      metrics.fleetConfigPublished.inc(["conflict"]);
      void agent.serialized(() => agent.catchUpConfig(false)).catch(() => {});
      throw new SwitchyardError({
        code: "fleet_config_conflict", status: 409, source: "client",
        message: `another push reached the fleet first (fleet config version ${published.current}); this instance takes it now: push again, built on it`,
      });
    }
    metrics.fleetConfigPublished.inc(["published"]);
    const { answer, applied } = await agent.answer({ ...record, version: published.version });
    if (applied === undefined) {
      throw new SwitchyardError({
        code: "fleet_config_refused_here", status: 422, source: "client",
        message: `the fleet has it as version ${published.version}, but it could not be put in force on this instance: ${answer.message}`,
      });
    }
    const view = await awaitAnswers(fleet, agent.redis, published.version);
    return { ...applied, fleet: { version: published.version, instances: view.instances } };
  });
}
