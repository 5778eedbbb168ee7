/** Small timing helpers shared by the benchmarks. */

export interface Row {
  bench: string;
  case: string;
  value: number;
  unit: string;
  baseline?: string;
  ratio?: number;
}

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

export function printTable(rows: Row[]): void {
  const header = ['bench', 'case', 'value', 'unit', 'baseline', 'ratio'];
  const cells = rows.map((r) => [
    r.bench,
    r.case,
    fmt(r.value),
    r.unit,
    r.baseline ?? '',
    r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i] as number)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}
