import { leastRequest } from "./least-request.ts";
import { maglev } from "./maglev.ts";
import { randomBalancer } from "./random.ts";
import { ringHash } from "./ring-hash.ts";
import { roundRobin } from "./round-robin.ts";
import type { BalancerConfig } from "./schema.ts";
import type { BalancedEndpoint, Balancer, BalancerFactory, BalancerType } from "./types.ts";
import { weightedRoundRobin } from "./weighted-round-robin.ts";

/** Every policy, by its config `type`; the `satisfies` makes a missing one a compile error. */
export const balancers = {
  round_robin: () => roundRobin(),
  weighted_round_robin: () => weightedRoundRobin(),
  least_request: (_endpoints, config, random) => leastRequest(config.choice_count, random),
  random: (_endpoints, _config, random) => randomBalancer(random),
  ring_hash: (endpoints, config, random) => ringHash(endpoints, config.points_per_weight, random),
  maglev: (endpoints, config, random) => maglev(endpoints, config.table_size, random),
} satisfies { [K in BalancerType]: BalancerFactory<Extract<BalancerConfig, { type: K }>> };

export function buildBalancer<E extends BalancedEndpoint>(endpoints: readonly E[], config: BalancerConfig, random?: () => number): Balancer<E> {
  const factory = balancers[config.type] as BalancerFactory<BalancerConfig>;
  return factory(endpoints, config, random);
}
