#!/usr/bin/env node
/**
 * gossipd's entry point. It runs the bundle (gossipd.cjs) through V8's code cache
 * (gossipd.cjs.cache, written by the build after one real start: scripts/code-cache.mjs),
 * so a start does not parse and compile the bundle's 400 KB and the functions a start
 * runs: about 15 ms of every start (docs/OPERATIONS.md, "Start-up"). Without the cache,
 * or when V8 rejects it (another Node version, other V8 flags), the bundle is compiled
 * as usual. This file is CommonJS, as the bundle is: Node loads ES modules through a
 * slower, asynchronous path.
 *
 * With GOSSIPD_CODE_CACHE_OUT set to a path, the cache of everything compiled so far is
 * written there when the process exits: the build sets it for its one start.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';

const file = join(__dirname, 'gossipd.cjs');
let cachedData: Buffer | undefined;
try {
  cachedData = readFileSync(`${file}.cache`);
} catch {
  // none: compiled as usual
}
const script = new Script(Module.wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
const out = process.env.GOSSIPD_CODE_CACHE_OUT;
if (out) process.on('exit', () => writeFileSync(out, script.createCachedData()));
const bundle = new Module(file, module);
bundle.filename = file;
const run = script.runInThisContext() as (
  exports: object,
  require: NodeJS.Require,
  module: Module,
  filename: string,
  dirname: string,
) => void;
run.call(bundle.exports, bundle.exports, createRequire(file), bundle, file, __dirname);
