#!/usr/bin/env node
// The gossip bin: it runs what the build writes (dist/main.js). It is a file of the sources,
// so that installing the workspace links it before anything is built.
import { existsSync } from 'node:fs';

if (!existsSync(new URL('../dist/main.js', import.meta.url))) {
  process.stderr.write('gossip: not built yet (no dist/main.js): run `npx -y pnpm@10 build` first\n');
  process.exit(1);
}
await import('../dist/main.js');
