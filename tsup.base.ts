/** What every package's tsup build shares: ESM, .d.ts, source maps, Node 20. */
export const base = {
  format: 'esm',
  target: 'node20',
  platform: 'node',
  dts: true,
  sourcemap: true,
  clean: true,
} as const;
