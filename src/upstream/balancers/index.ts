import { roundRobin } from "./round-robin.ts";
import type { BalancerFactory, BalancerType } from "./types.ts";

export const balancers = {
  round_robin: () => roundRobin(),
} satisfies Record<BalancerType, BalancerFactory>;
