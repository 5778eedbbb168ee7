import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GossipClient, utf8Codec } from '@gossip/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// gossipd as one executable file (apps/gossipd/scripts/sea.mjs, `pnpm build:sea`): built
// here into a temporary folder, started with nothing beside it, used over TCP and HTTP,
// stopped; and the systemd unit of apps/gossipd/deploy, pointed at it, verified.

const APP = fileURLToPath(new URL('../../../apps/gossipd/', import.meta.url));
const run = promisify(execFile);

let work: string;
let exe: string;
const children: ChildProcess[] = [];
const clients: GossipClient<string>[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gossipd-sea-test-'));
  exe = join(work, 'bin', 'gossipd');
  await run(process.execPath, [join(APP, 'scripts/sea.mjs'), exe], { timeout: 110_000 });
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close({ timeoutMs: 0 })));
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (work) await rm(work, { recursive: true, force: true });
});

describe('single executable', () => {
  it('sea - the one file runs alone: publish, fetch, /metrics, /readyz, then SIGTERM exits 0', async () => {
    const { stdout: version } = await run(exe, ['--version'], { cwd: work, env: {} });
    expect(version).toMatch(/^gossipd 0\.1\.0 \(protocol 1\)\n$/);
    // an empty environment and no node_modules on its way up: only the file
    const child = spawn(
      exe,
      ['--port', '0', '--admin-port', '0', '--data-dir', join(work, 'data'), '--log-format', 'json'],
      { cwd: work, env: {}, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    const ports = { gossip: 0, admin: 0 };
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the executable exited (${code}) before listening`)));
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const admin = /admin listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (admin) ports.admin = Number(admin[1]);
        const gossip = /listening on gossip:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (gossip) {
          ports.gossip = Number(gossip[1]);
          resolve();
        }
      });
    });
    const c = new GossipClient<string>({ address: `127.0.0.1:${ports.gossip}`, codec: utf8Codec, since: 'now' });
    clients.push(c);
    await c.connect();
    expect(await c.publish('k', 'v', { ts: 5n })).toMatchObject({ status: 'accepted', durability: 'written' });
    expect(await c.fetch(['k'])).toEqual([{ id: 'k', found: true, ts: 5n, deleted: false, value: 'v' }]);
    const metrics = await (await fetch(`http://127.0.0.1:${ports.admin}/metrics`)).text();
    expect(metrics).toMatch(/^gossip_publishes_total\b.* 1$/m);
    expect((await fetch(`http://127.0.0.1:${ports.admin}/readyz`)).status).toBe(200);
    await c.close();
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
  });

  it('sea - the systemd unit, its ExecStart pointed at the built file, passes systemd-analyze verify', async () => {
    const unit = await readFile(join(APP, 'deploy/gossipd.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/gossipd /m);
    const path = join(work, 'gossipd.service');
    await writeFile(path, unit.replace(/^ExecStart=\/usr\/local\/bin\/gossipd /m, `ExecStart=${exe} `));
    const { stderr } = await run('systemd-analyze', ['verify', path]);
    expect(stderr).toBe('');
  });
});
