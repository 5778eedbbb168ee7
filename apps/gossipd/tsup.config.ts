import { defineConfig } from 'tsup';
import { base } from '../../tsup.base.js';

/*
 * gossipd ships as one CommonJS bundle with its dependencies (the workspace packages,
 * pino, msgpackr), so a start loads one file instead of resolving and compiling dozens
 * of modules: about 20 ms of every start (bench/RESULTS.md, W4). prom-client and
 * pino-pretty stay outside it, loaded from node_modules only when used (metrics are
 * scraped, logs go to a terminal). The entry point, main.cjs (src/launch.ts), runs the
 * bundle through the V8 code cache the build writes after it (scripts/code-cache.mjs).
 * CommonJS because Node loads it synchronously, some ms sooner than an ES module.
 */
export default defineConfig({
  ...base,
  format: 'cjs',
  dts: false,
  entry: { gossipd: 'src/main.ts', main: 'src/launch.ts' },
  noExternal: [/^(?!prom-client$|pino-pretty$)/],
  // What the bundle loads only when used (prom-client, pino-pretty, tls) as require():
  // an import() in code compiled by node:vm needs an experimental loader hook.
  esbuildOptions(options) {
    options.supported = { ...options.supported, 'dynamic-import': false };
  },
});
