#!/usr/bin/env node
/**
 * gossipd's entry point. It runs the bundle (gossipd.cjs) through V8's code cache
 * (gossipd.cjs.cache, written by the build after one real start: scripts/code-cache.mjs),
 * so a start does not parse and compile the bundle's 400 KB and the functions a start
 * runs: about 15 ms of every start (docs/OPERATIONS.md, "Start-up"). This file is
 * CommonJS, as the bundle is: Node loads ES modules through a slower, asynchronous path.
 *
 * V8 checks little of a cache: that it was made by this V8 with these flags, and for a
 * source of the same length. It runs a cache made for other source of that length, and
 * crashes on one damaged inside. So the cache file starts with the SHA-256 of the bundle
 * it was made from and of the V8 data after it, and is used only when both match.
 * Otherwise, or when V8 rejects it, the bundle is compiled as usual.
 *
 * With GOSSIPD_CODE_CACHE_OUT set to a path, the cache of everything compiled so far is
 * written there when the process exits: the build sets it for its one start.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { CODE_CACHE_STATUS, type CodeCacheStatus } from './code-cache.js';

const file = join(__dirname, 'gossipd.cjs');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

if (process.sourceMapsEnabled) {
  // Node maps stack traces only for code its own loader compiled.
  (globalThis as Record<symbol, CodeCacheStatus>)[CODE_CACHE_STATUS] = 'off';
  require(file);
} else {
  const source = readFileSync(file);
  const digest = sha256(source);
  let status: CodeCacheStatus = 'none';
  let cachedData: Buffer | undefined;
  try {
    const cache = readFileSync(`${file}.cache`);
    const data = cache.subarray(64);
    status = 'mismatch';
    if (digest.equals(cache.subarray(0, 32)) && sha256(data).equals(cache.subarray(32, 64))) cachedData = data;
  } catch {
    // none: compiled as usual
  }
  // Module.wrap puts the source inside a function, where a hashbang line is a syntax error.
  const text = source.toString('utf8').replace(/^#!.*/, '');
  const script = new Script(Module.wrap(text), { filename: file, cachedData });
  if (cachedData) status = script.cachedDataRejected ? 'rejected' : 'used';
  (globalThis as Record<symbol, CodeCacheStatus>)[CODE_CACHE_STATUS] = status;
  const out = process.env.GOSSIPD_CODE_CACHE_OUT;
  if (out) {
    process.on('exit', () => {
      const data = script.createCachedData();
      writeFileSync(out, Buffer.concat([digest, sha256(data), data]));
    });
  }
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
}
