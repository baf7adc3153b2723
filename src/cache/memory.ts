/** The in-memory tier: hot entries, least recently used dropped first. Callers decide what is small enough to keep. */
export class MemoryLru<V extends { size: number }> {
  private readonly map = new Map<string, V>();
  private total = 0;

  constructor(private readonly maxTotal: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key); // refresh recency: Map keeps insertion order
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, value: V): void {
    this.delete(key);
    if (value.size > this.maxTotal) return;
    this.map.set(key, value);
    this.total += value.size;
    for (const [k, v] of this.map) {
      if (this.total <= this.maxTotal) break;
      this.map.delete(k);
      this.total -= v.size;
    }
  }

  delete(key: string): void {
    const v = this.map.get(key);
    if (v === undefined) return;
    this.map.delete(key);
    this.total -= v.size;
  }

  /** Drops every entry whose key satisfies `match`. */
  deleteWhere(match: (key: string) => boolean): void {
    for (const k of [...this.map.keys()]) if (match(k)) this.delete(k);
  }
}
