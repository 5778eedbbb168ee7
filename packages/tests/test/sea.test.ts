import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GossipClient, utf8Codec } from '@gossip/client';
import { Gossipd } from '@gossip/testing';
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
    const d = await Gossipd.start({
      executable: exe,
      cleanEnv: true,
      dataDir: join(work, 'data'),
      onSpawn: (child) => children.push(child),
    });
    const c = new GossipClient<string>({ address: `127.0.0.1:${d.port}`, codec: utf8Codec, since: 'now' });
    clients.push(c);
    await c.connect();
    expect(await c.publish('k', 'v', { ts: 5n })).toMatchObject({ status: 'accepted', durability: 'written' });
    expect(await c.fetch(['k'])).toEqual([{ id: 'k', found: true, ts: 5n, deleted: false, value: 'v' }]);
    expect(await d.metric('gossip_publishes_total')).toBe(1);
    expect(await d.admin('/readyz')).toEqual({ status: 200, text: 'ready\n' });
    await c.close();
    expect(await d.stop()).toEqual({ code: 0, signal: null });
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
