/**
 * Sums Prometheus text expositions of several processes (the workers) into one: samples with the
 * same name and labels are added; gauges that are states, not amounts, take the maximum.
 */
const MAX_NOT_SUM = new Set([
  "switchyard_config_version", "switchyard_config_push_info", "switchyard_breaker_state", "switchyard_endpoint_healthy",
  "switchyard_rollout_weight", "switchyard_rollout_state", "switchyard_rollout_step",
  "switchyard_fleet_redis_up", "switchyard_fleet_in_sync", "switchyard_fleet_instances", "switchyard_fleet_config_version",
]);

export function mergeExpositions(texts: readonly string[]): string {
  const header = new Map<string, string[]>(); // family → its HELP/TYPE lines, in first-seen order
  const samples = new Map<string, Map<string, number>>(); // family → series → value
  for (const text of texts) {
    let family = "";
    for (const line of text.split("\n")) {
      if (line === "") continue;
      if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) {
        family = line.split(" ")[2]!;
        const lines = header.get(family) ?? [];
        if (lines.length < 2 && !lines.includes(line)) lines.push(line);
        header.set(family, lines);
        if (!samples.has(family)) samples.set(family, new Map());
        continue;
      }
      const space = line.lastIndexOf(" ");
      const series = line.slice(0, space);
      const value = Number(line.slice(space + 1));
      const values = samples.get(family)!;
      const before = values.get(series);
      const base = series.split("{")[0]!;
      values.set(series, before === undefined ? value : MAX_NOT_SUM.has(base) ? Math.max(before, value) : before + value);
    }
  }
  const out: string[] = [];
  for (const [family, lines] of header) {
    out.push(...lines);
    for (const [series, value] of samples.get(family)!) out.push(`${series} ${Number.isFinite(value) ? value : value > 0 ? "+Inf" : "NaN"}`);
  }
  return `${out.join("\n")}\n`;
}

/**
 * Only the counter and histogram families of an exposition: what a worker that is gone (or did not
 * answer in time) keeps contributing, so that the sum over workers never goes down. Its gauges are
 * live state and leave with it.
 */
export function monotonicPart(text: string): string {
  const out: string[] = [];
  let help = "";
  let keep = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("# HELP ")) {
      help = line;
      keep = false;
    } else if (line.startsWith("# TYPE ")) {
      const kind = line.split(" ")[3];
      keep = kind === "counter" || kind === "histogram";
      if (keep) out.push(help, line);
    } else if (keep && line !== "") out.push(line);
  }
  return out.length ? `${out.join("\n")}\n` : "";
}
