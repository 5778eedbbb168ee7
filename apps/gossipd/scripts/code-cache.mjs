// Writes dist/gossipd.cjs.cache, the V8 code cache dist/main.cjs runs the bundle with
// (src/launch.ts): one real start of gossipd (port 0, a temporary data folder, no
// admin listener), stopped with SIGTERM once it listens, so that the cache holds every
// function a start and a clean stop compile. Then a second start checks that V8 takes
// the cache. gossipd runs without GOSSIP_* variables and NODE_OPTIONS, which could
// change what it logs or the V8 flags a cache is made for. Any failure fails the build.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const out = join(dist, 'gossipd.cjs.cache');
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('GOSSIP_') && k !== 'NODE_OPTIONS'),
);

/** Starts gossipd, stops it once it listens; resolves with its listening log line. */
async function startAndStop(extraEnv) {
  const dir = mkdtempSync(join(tmpdir(), 'gossipd-code-cache-'));
  const lines = [];
  let stderr = '';
  const child = spawn(
    process.execPath,
    [join(dist, 'main.cjs'), '--port', '0', '--admin-port', 'off', '--data-dir', dir, '--log-format', 'json'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, ...extraEnv } },
  );
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal));
    child.on('error', (error) => resolve(error.message));
  });
  const listening = new Promise((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (line.includes('listening on gossip')) resolve(JSON.parse(line));
    });
  });
  const within = (ms, promise) => Promise.race([promise, new Promise((r) => setTimeout(r, ms, 'timeout').unref())]);
  try {
    const first = await within(20_000, Promise.race([listening, exited.then((code) => ({ exited: code }))]));
    if (first === 'timeout' || 'exited' in first) {
      child.kill('SIGKILL');
      await within(5_000, exited);
      throw new Error(`gossipd did not start (${first === 'timeout' ? 'timeout' : `exit ${first.exited}`})`);
    }
    child.kill('SIGTERM');
    const code = await within(20_000, exited);
    if (code !== 0) {
      child.kill('SIGKILL');
      throw new Error(`gossipd did not stop cleanly (${code})`);
    }
    return first;
  } catch (error) {
    console.error(`code cache: ${error.message}\n${lines.join('\n')}\n${stderr}`);
    throw error;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

rmSync(out, { force: true });
await startAndStop({ GOSSIPD_CODE_CACHE_OUT: out });
const check = await startAndStop({});
if (check.codeCache !== 'used') throw new Error(`code cache: written, but a start reports it ${check.codeCache}`);
console.log(`code cache: ${out} (${Math.round(statSync(out).size / 1024)} KiB), used by a start`);
