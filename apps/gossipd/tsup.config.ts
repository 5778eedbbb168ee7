import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';
import { base } from '../../tsup.base.js';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string };

/*
 * gossipd ships as one CommonJS file, dist/main.cjs, with every dependency inside it (the
 * workspace packages, pino, msgpackr, prom-client, pino-pretty): it runs from a folder with
 * no node_modules, and a start reads one file instead of resolving dozens of modules.
 * CommonJS because Node loads it synchronously, without starting its ES module loader.
 * What a start does not need is bundled but not run until used (prom-client at the first
 * scrape, pino-pretty for pretty logs, node:http with the admin listener, node:tls with
 * TLS): esbuild wraps each such module in a function called on first use.
 */
export default defineConfig({
  ...base,
  format: 'cjs',
  dts: false,
  entry: { main: 'src/main.ts' },
  noExternal: [/./],
  banner: { js: '#!/usr/bin/env node' },
  // V8 parses the whole file at every start, code that runs only on demand too: without
  // whitespace and comments it is a third smaller and parsed sooner. Names stay, for stack
  // traces; `node --enable-source-maps` maps them to the sources (main.cjs.map).
  minifyWhitespace: true,
  minifySyntax: true,
  // The one version string: `gossipd --version`, --help, the listening line, the welcome.
  define: { __GOSSIP_VERSION__: JSON.stringify(version) },
  // import() of what is loaded only when used becomes a require() in a promise: Node's
  // import() would start its ES module loader for one builtin module (node:tls).
  esbuildOptions(options) {
    options.supported = { ...options.supported, 'dynamic-import': false };
  },
});
