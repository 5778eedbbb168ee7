import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';
import { base } from '../../tsup.base.js';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

export default defineConfig({
  ...base,
  entry: { main: 'src/main.ts' },
  banner: { js: '#!/usr/bin/env node' },
  // The one version string, `gossip --version` and --help (src/main.ts).
  define: { __GOSSIP_VERSION__: JSON.stringify(version) },
});
