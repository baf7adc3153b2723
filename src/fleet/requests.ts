/** Requests served by this machine so far (all its workers): the heartbeat's requests/s is the difference per interval. */
import { metricsText } from "../observe/worker-metrics.ts";

const SERIES = /^switchyard_requests_total\{[^}]*\} (\S+)$/gm;

export async function requestsTotal(): Promise<number> {
  const text = await metricsText();
  let total = 0;
  for (const m of text.matchAll(SERIES)) total += Number(m[1]) || 0;
  return total;
}
