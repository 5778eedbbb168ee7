import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { run: 'src/run.ts' },
  format: 'esm',
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
});
