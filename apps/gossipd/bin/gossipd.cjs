#!/usr/bin/env node
// The gossipd bin: it runs the one file the build writes (dist/main.cjs, every dependency inside).
// It is a file of the sources, so that installing the workspace links it before anything is built.
try {
  require.resolve('../dist/main.cjs');
} catch {
  process.stderr.write('gossipd: not built yet (no dist/main.cjs): run `npx -y pnpm@10 build` first\n');
  process.exit(1);
}
// Node 22.1 and newer keep V8's compiled code of the bundle between starts (Node's own
// compile cache, in the system's temporary folder); on Node 20 there is no such call.
require('node:module').enableCompileCache?.();
require('../dist/main.cjs');
