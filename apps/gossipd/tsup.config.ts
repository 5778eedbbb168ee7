import { defineConfig } from 'tsup';
import { base } from '../../tsup.base.js';

/*
 * gossipd ships as one bundle with its dependencies (the workspace packages, pino,
 * msgpackr), so a start loads one file instead of resolving and compiling dozens of
 * modules: about 20 ms of every start (bench/RESULTS.md, W4). prom-client and
 * pino-pretty stay outside it, loaded from node_modules only when used (metrics are
 * scraped, logs go to a terminal); the admin listener is a chunk of its own. Bundled
 * CommonJS code (pino) calls `require`, which an ES module lacks: the banner makes one.
 */
export default defineConfig({
  ...base,
  entry: { main: 'src/main.ts' },
  noExternal: [/^(?!prom-client$|pino-pretty$)/],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __gossipRequire } from 'node:module';\nconst require = __gossipRequire(import.meta.url);",
  },
});
