#!/usr/bin/env node
// The gossip bin: it runs what the build writes (dist/main.js). It is a file of the sources,
// so that installing the workspace links it before anything is built. It checks the Node.js
// version first: on one too old, loading dist/main.js would fail on a missing built-in
// (zlib.crc32) with a SyntaxError instead of saying what is needed.
import { existsSync } from 'node:fs';
import { belowNodeFloor } from '@gossip/protocol';

const tooOld = belowNodeFloor('gossip');
if (tooOld) {
  process.stderr.write(`gossip: ${tooOld}\n`);
  process.exit(1);
}
if (!existsSync(new URL('../dist/main.js', import.meta.url))) {
  process.stderr.write('gossip: not built yet (no dist/main.js): run `npx -y pnpm@10 build` first\n');
  process.exit(1);
}
await import('../dist/main.js');
