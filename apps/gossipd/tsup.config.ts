import { defineConfig } from 'tsup';
import { base } from '../../tsup.base.js';

export default defineConfig({
  ...base,
  entry: { main: 'src/main.ts' },
  banner: { js: '#!/usr/bin/env node' },
});
