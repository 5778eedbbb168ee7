/** Small timing helpers shared by the benchmarks. */

export interface Row {
  bench: string;
  case: string;
  value: number;
  unit: string;
  baseline?: string;
  ratio?: number;
  /** The goal this figure is held to, and whether it met it (`goal()`). */
  goal?: string;
}

/** A goal's cell: what it asks and whether the figure met it (undefined: a figure it needs is missing). */
export function goal(text: string, met: boolean | undefined): string {
  return `${text}: ${met === undefined ? 'not measured' : met ? 'met' : 'NOT met'}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `round` (which does `opsPerRound` operations) for at least `ms`, best of `repeats` rates. */
export function rate(round: () => void, opsPerRound: number, ms = 1000, repeats = 3): number {
  for (let i = 0; i < 3; i++) round(); // warm up the JIT
  let best = 0;
  for (let r = 0; r < repeats; r++) {
    let ops = 0;
    const t0 = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < ms / repeats) {
      round();
      ops += opsPerRound;
      elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
    }
    best = Math.max(best, (ops / elapsed) * 1000);
  }
  return best;
}

export function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(n < 10 ? 2 : 0);
}

/** The value below which a share `p` (0 to 1) of the ascending `sorted` samples lie. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

/** A Markdown table, its columns padded to their widest cell: one string per line. */
export function markdownTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
}

export function printTable(rows: Row[]): void {
  const header = ['bench', 'case', 'value', 'unit', 'baseline', 'ratio', 'goal'];
  const cells = rows.map((r) => [
    r.bench,
    r.case,
    fmt(r.value),
    r.unit,
    r.baseline ?? '',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
    r.goal ?? '',
  ]);
  for (const line of markdownTable(header, cells)) console.log(line);
}
