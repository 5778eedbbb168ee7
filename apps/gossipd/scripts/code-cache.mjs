// Writes dist/gossipd.cjs.cache, the V8 code cache dist/main.cjs runs the bundle with:
// one real start of gossipd (port 0, a temporary data folder, no admin listener),
// stopped with SIGTERM once it listens, so that the cache holds every function a start
// and a clean stop compile. A start that fails fails the build.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const dist = new URL('../dist/', import.meta.url).pathname;
const out = join(dist, 'gossipd.cjs.cache');
const dir = mkdtempSync(join(tmpdir(), 'gossipd-code-cache-'));
rmSync(out, { force: true });
try {
  const child = spawn(
    process.execPath,
    [join(dist, 'main.cjs'), '--port', '0', '--admin-port', 'off', '--data-dir', dir, '--log-format', 'json'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, GOSSIPD_CODE_CACHE_OUT: out } },
  );
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const listening = new Promise((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('listening on gossip')) resolve(true);
    });
  });
  const timeout = new Promise((resolve) => setTimeout(resolve, 20_000, false).unref());
  if (!(await Promise.race([listening, exited.then(() => false), timeout]))) {
    child.kill('SIGKILL');
    throw new Error('gossipd did not start');
  }
  child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) throw new Error(`gossipd exited with ${code}`);
  console.log(`code cache: ${out} (${Math.round(statSync(out).size / 1024)} KiB)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
