/** Number formats and a plain-text table for the bench scripts' output. */

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
export const fmtMs = (ms: number, digits = 1) => (Number.isFinite(ms) ? `${ms.toFixed(digits)} ms` : "-");
export const fmtMiB = (kib: number | null | undefined, digits = 1) => (kib === null || kib === undefined || !Number.isFinite(kib) ? "-" : `${(kib / 1024).toFixed(digits)} MiB`);
export const fmtRatio = (r: number) => (Number.isFinite(r) ? r.toFixed(2) : "-");

/** Columns padded to their widest cell; `left[i]` aligns column i left (default right, except the first). */
export function table(header: string[], rows: string[][], left?: boolean[]): string {
  const align = left ?? header.map((_, i) => i === 0);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (align[i] ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
