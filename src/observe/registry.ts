/**
 * A small metrics registry rendering the Prometheus text exposition format (0.0.4). Series are
 * keyed by their label values joined once per update; no allocation beyond the first sample of a
 * series. Gauges that mirror live state are filled by collectors at scrape time.
 */

type Labels = readonly string[];

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

function labelText(names: readonly string[], values: Labels, extra = ""): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? "")}"`);
  if (extra) parts.push(extra);
  return parts.length ? `{${parts.join(",")}}` : "";
}

const formatNumber = (n: number) => (Number.isFinite(n) ? String(n) : n > 0 ? "+Inf" : n < 0 ? "-Inf" : "NaN");

interface Metric {
  render(out: string[]): void;
}

export class Counter implements Metric {
  private readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[]) {}

  inc(labels: Labels, by = 1): void {
    const key = labels.join("\u0000");
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels: [...labels], value: by });
  }

  /**
   * One series, resolved once: for hot paths whose labels are known ahead (a rate limit's
   * decisions), an increment without joining the labels again. The series appears at the first inc.
   */
  bind(labels: Labels): { inc(by?: number): void } {
    const key = labels.join("\u0000");
    let series: { labels: Labels; value: number } | undefined;
    return {
      inc: (by = 1) => {
        series ??= this.series.get(key);
        if (series === undefined) this.series.set(key, (series = { labels: [...labels], value: 0 }));
        series.value += by;
      },
    };
  }

  /** The sum over the series whose labels satisfy `match`. */
  sum(match: (labels: Labels) => boolean): number {
    let total = 0;
    for (const s of this.series.values()) if (match(s.labels)) total += s.value;
    return total;
  }

  value(labels: Labels): number {
    return this.series.get(labels.join("\u0000"))?.value ?? 0;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const s of this.series.values()) out.push(`${this.name}${labelText(this.labelNames, s.labels)} ${formatNumber(s.value)}`);
  }
}

export class Gauge implements Metric {
  private readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[], private readonly collect?: (set: (labels: Labels, value: number) => void) => void) {}

  set(labels: Labels, value: number): void {
    this.series.set(labels.join("\u0000"), { labels: [...labels], value });
  }

  render(out: string[]): void {
    if (this.collect) {
      this.series.clear();
      this.collect((labels, value) => this.set(labels, value));
    }
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    for (const s of this.series.values()) out.push(`${this.name}${labelText(this.labelNames, s.labels)} ${formatNumber(s.value)}`);
  }
}

interface HistogramSeries {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram implements Metric {
  private readonly series = new Map<string, HistogramSeries>();
  constructor(readonly name: string, readonly help: string, readonly labelNames: readonly string[], readonly buckets: readonly number[]) {}

  observe(labels: Labels, value: number): void {
    this.record(this.seriesOf(labels), value);
  }

  /** One series, resolved once (as Counter.bind): observations without joining the labels again. */
  bind(labels: Labels): { observe(value: number): void } {
    let series: HistogramSeries | undefined;
    return { observe: (value) => this.record((series ??= this.seriesOf(labels)), value) };
  }

  private seriesOf(labels: Labels): HistogramSeries {
    const key = labels.join("\u0000");
    let s = this.series.get(key);
    if (!s) {
      s = { labels: [...labels], counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  private record(s: HistogramSeries, value: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const s of this.series.values()) {
      this.buckets.forEach((le, i) => out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, `le="${le}"`)} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, 'le="+Inf"')} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatNumber(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }

  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    return `${out.join("\n")}\n`;
  }
}

/**
 * The same exposition as OpenMetrics 1.0 text: counter families are named without their `_total`
 * suffix in HELP/TYPE (the samples keep it), and the document ends with `# EOF`.
 */
export function toOpenMetrics(prometheusText: string): string {
  const lines = prometheusText.split("\n").filter((l) => l !== "");
  const counters = new Set(lines.filter((l) => l.startsWith("# TYPE ") && l.endsWith(" counter")).map((l) => l.split(" ")[2]!));
  const out = lines.map((line) => {
    if (!line.startsWith("# HELP ") && !line.startsWith("# TYPE ")) return line;
    const [hash, kind, name, ...rest] = line.split(" ");
    return counters.has(name!) && name!.endsWith("_total") ? [hash, kind, name!.slice(0, -"_total".length), ...rest].join(" ") : line;
  });
  return `${out.join("\n")}\n# EOF\n`;
}
