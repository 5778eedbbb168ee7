import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { harness } from './harness.js';

// Configuration cannot silently open things: a public address needs tokens or
// --insecure (the admin listener too), POST /compact needs a token when tokens are set,
// and a token source that yields no token is refused. A refused start creates nothing.

const h = harness();

/** Runs gossipd on a data folder that does not exist yet; resolves with the run and that folder. */
async function spawnFresh(args: string[], env: Record<string, string> = {}) {
  const dataDir = join(await h.tmp(), 'sub');
  const run = await h.spawn(
    ['--data-dir', dataDir, '--port', '0', '--admin-port', '0', '--log-format', 'json', ...args],
    env,
  );
  return { run, dataDir };
}

describe('config safety - binding', () => {
  it.each([
    { name: '--admin-host 0.0.0.0', args: ['--admin-host', '0.0.0.0'], message: /admin listener on 0\.0\.0\.0/ },
    { name: '--admin-host ::', args: ['--admin-host', '::'], message: /admin listener on ::/ },
    { name: '--host 0.0.0.0', args: ['--host', '0.0.0.0'], message: /listen on 0\.0\.0\.0/ },
  ])('config safety - $name without tokens exits 2 naming --insecure and creates no data folder', async ({
    args,
    message,
  }) => {
    const { run, dataDir } = await spawnFresh(args);
    expect(run.code).toBe(2);
    expect(run.port).toBeUndefined();
    expect(run.adminPort).toBeUndefined();
    const fatal = run.logs.find((l) => l.code === 'GOSSIP_ERR_INSECURE');
    expect(fatal?.msg).toMatch(message);
    expect(fatal?.msg).toMatch(/--token/);
    expect(fatal?.msg).toMatch(/--insecure/);
    expect(existsSync(dataDir)).toBe(false);
  });

  it('config safety - --host and --admin-host 0.0.0.0 with --insecure start', async () => {
    const { run, dataDir } = await spawnFresh(['--host', '0.0.0.0', '--admin-host', '0.0.0.0', '--insecure']);
    expect(run.port).toBeGreaterThan(0);
    expect(run.adminPort).toBeGreaterThan(0);
    expect(run.logs.find((l) => l.msg.startsWith('admin listening'))).toMatchObject({ host: '0.0.0.0' });
    expect(existsSync(dataDir)).toBe(true);
    // Without tokens POST /compact stays open, as the operator chose.
    const res = await fetch(`http://127.0.0.1:${run.adminPort}/compact`, { method: 'POST' });
    expect(res.status).toBe(200);
  });

  it('config safety - --admin-host 0.0.0.0 with a token starts', async () => {
    const { run } = await spawnFresh(['--admin-host', '0.0.0.0', '--token', 's3cret']);
    expect(run.adminPort).toBeGreaterThan(0);
    const res = await fetch(`http://127.0.0.1:${run.adminPort}/healthz`);
    expect(res.status).toBe(200);
  });

  it('config safety - --admin-host 0.0.0.0 with --admin-port off starts: there is no admin listener', async () => {
    const dataDir = join(await h.tmp(), 'sub');
    const run = await h.spawn([
      '--data-dir',
      dataDir,
      '--port',
      '0',
      '--admin-port',
      'off',
      '--admin-host',
      '0.0.0.0',
      '--log-format',
      'json',
    ]);
    expect(run.port).toBeGreaterThan(0);
    expect(run.adminPort).toBeUndefined();
  });
});

describe('config safety - admin auth', () => {
  it('config safety - a flood of bad POST /compact is counted each and logged at most 10 times a second', async () => {
    const d = await h.start({ args: ['--token', 's3cret'] });
    const t0 = performance.now();
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`http://127.0.0.1:${d.adminPort}/compact`, {
        method: 'POST',
        headers: { authorization: 'Bearer wrong' },
      });
      expect(res.status).toBe(401);
      await res.text();
    }
    const seconds = Math.ceil((performance.now() - t0) / 1000);
    expect(await d.metric('gossip_auth_failures_total')).toBe(40);
    // every failure is a line or counted in one's `suppressed`, said at the latest at its second's end
    const admin = () => d.logs.filter((l) => l.msg.startsWith('admin auth failed'));
    const told = () =>
      admin().filter((l) => l.msg === 'admin auth failed').length +
      admin().reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0);
    for (let i = 0; i < 40 && told() < 40; i++) await new Promise((r) => setTimeout(r, 100));
    expect(told()).toBe(40);
    const lines = admin().filter((l) => l.msg === 'admin auth failed');
    expect(lines.length).toBeLessThanOrEqual(10 * (seconds + 1));
    // within the second that began with the first line, 10 at most
    const first = lines[0]?.time as number;
    expect(lines.filter((l) => (l.time as number) < first + 1000).length).toBeLessThanOrEqual(10);
  });

  it('config safety - with --token, POST /compact needs Authorization: Bearer <token>; the GETs stay open', async () => {
    const d = await h.start({ args: ['--token', 's3cret'] });
    const compact = (authorization?: string) =>
      fetch(`http://127.0.0.1:${d.adminPort}/compact`, {
        method: 'POST',
        ...(authorization === undefined ? {} : { headers: { authorization } }),
      });

    for (const authorization of [undefined, 'Bearer wrong', 'Basic czNjcmV0', 's3cret', 'Bearer ']) {
      const res = await compact(authorization);
      expect(res.status, String(authorization)).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await res.text()).toMatch(/Authorization: Bearer <token>/);
    }
    expect(await d.metric('gossip_auth_failures_total')).toBe(5);
    expect(await d.waitLog((l) => l.msg === 'admin auth failed')).toMatchObject({ level: 40, component: 'admin' });

    for (const authorization of ['Bearer s3cret', 'bearer s3cret']) {
      const res = await compact(authorization);
      expect(res.status).toBe(200);
      expect(JSON.parse(await res.text())).toHaveProperty('runs');
    }
    expect((await d.admin('/metrics')).status).toBe(200);
    expect(await d.admin('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    expect(await d.admin('/readyz')).toEqual({ status: 200, text: 'ready\n' });
    // The token is never logged.
    expect(JSON.stringify(d.logs)).not.toMatch(/s3cret/);
  });
});

describe('config safety - token sources', () => {
  it.each<{ name: string; file?: string; env?: Record<string, string>; message: RegExp }>([
    { name: 'an empty --token-file', file: '', message: /--token-file .* holds no token/ },
    {
      name: 'a comment-only --token-file',
      file: '# service tokens\n\n  # none yet\n',
      message: /--token-file .* holds no token/,
    },
    { name: 'GOSSIP_TOKENS=""', env: { GOSSIP_TOKENS: '' }, message: /GOSSIP_TOKENS is set but holds no token/ },
    { name: 'GOSSIP_TOKENS=","', env: { GOSSIP_TOKENS: ',' }, message: /GOSSIP_TOKENS is set but holds no token/ },
    { name: 'GOSSIP_TOKEN_FILE=""', env: { GOSSIP_TOKEN_FILE: '' }, message: /GOSSIP_TOKEN_FILE is empty/ },
  ])('config safety - $name exits 2 naming the source and creates no data folder', async ({ file, env, message }) => {
    const args: string[] = [];
    if (file !== undefined) {
      const path = join(await h.tmp(), 'tokens');
      await writeFile(path, file);
      args.push('--token-file', path);
    }
    const { run, dataDir } = await spawnFresh(args, env);
    expect(run.code).toBe(2);
    expect(run.port).toBeUndefined();
    expect(run.stderr).toMatch(/^gossipd: /);
    expect(run.stderr).toMatch(message);
    expect(existsSync(dataDir)).toBe(false);
  });
});
