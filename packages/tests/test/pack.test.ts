import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Gossipd } from '@gossip/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The public packages as users get them: packed with pnpm (workspace and catalog versions
// rewritten), installed with plain npm into a fresh project outside the workspace (their
// third-party dependencies from the registry), and run there.

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PUBLIC = [
  'packages/protocol',
  'packages/store',
  'packages/server',
  'packages/client',
  'apps/cli',
  'apps/gossipd',
];
const run = promisify(execFile);

let work: string;
let project: string;
let tarballs: string[];
const children: ChildProcess[] = [];

/** `npm`/`npx` of this Node, with the project's own config only. */
function npmEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') && !k.startsWith('GOSSIP_')),
  );
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gossip-pack-'));
  const packs = join(work, 'tarballs');
  for (const dir of PUBLIC) {
    await run('npx', ['-y', 'pnpm@10', 'pack', '--pack-destination', packs], { cwd: join(ROOT, dir), env: npmEnv() });
  }
  tarballs = (await readdir(packs)).map((f) => join(packs, f));
  project = join(work, 'project');
  await run('mkdir', ['-p', project]);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'try-gossip', private: true, type: 'module' }));
  await run('npm', ['install', ...tarballs], { cwd: project, env: npmEnv(), timeout: 170_000 });
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (work) await rm(work, { recursive: true, force: true });
});

/** The installed gossipd (the npm-made bin of the packed gossipd), started on a free port. */
async function startInstalled(): Promise<Gossipd> {
  const d = await Gossipd.start({
    executable: join(project, 'node_modules/.bin/gossipd'),
    admin: false,
    dataDir: join(work, 'data'),
    onSpawn: (child) => children.push(child),
  });
  return d;
}

describe('pack', () => {
  it('pack - every public package packs with real versions, a LICENSE, a CHANGELOG, its repository and its Node floor', async () => {
    expect(tarballs).toHaveLength(PUBLIC.length);
    for (const tarball of tarballs) {
      const { stdout: files } = await run('tar', ['-tzf', tarball]);
      for (const f of ['package/package.json', 'package/LICENSE', 'package/CHANGELOG.md', 'package/README.md'])
        expect(files.split('\n'), `${tarball} ${f}`).toContain(f);
      const { stdout } = await run('tar', ['-xzOf', tarball, 'package/package.json']);
      expect(stdout, tarball).not.toMatch(/workspace:|catalog:/);
      const pkg = JSON.parse(stdout) as Record<string, unknown>;
      expect(pkg.private, tarball).toBeUndefined();
      expect(pkg.engines, tarball).toEqual({ node: '^20.19.0 || >=22.12.0' });
      expect(pkg.repository, tarball).toMatchObject({ type: 'git', url: expect.stringContaining('gossip') });
      expect(pkg.homepage, tarball).toEqual(expect.any(String));
      // a library: require() on a Node that has require(esm) reaches the module itself, on another the stub
      if (String(pkg.name).startsWith('@gossip/') && pkg.name !== '@gossip/cli') {
        const root = (pkg.exports as Record<string, Record<string, string>>)['.'];
        expect(Object.keys(root ?? {}), tarball).toEqual(['types', 'module-sync', 'import', 'require', 'default']);
        expect(root?.require, tarball).toBe('./dist/require.cjs');
        expect(files.split('\n'), tarball).toContain('package/dist/require.cjs');
      }
    }
  });

  it('pack - installed with npm outside the workspace: npx gossipd --version, npx gossip, a client against the installed gossipd', async () => {
    const { stdout: version } = await run('npx', ['gossipd', '--version'], { cwd: project, env: npmEnv() });
    expect(version).toMatch(/^gossipd 0\.1\.0 \(protocol 1\)\n$/);
    const { stdout: help } = await run('npx', ['gossip', '--help'], { cwd: project, env: npmEnv() });
    expect(help).toContain('Usage: gossip <command>');

    const d = await startInstalled();
    const address = `127.0.0.1:${d.port}`;
    await writeFile(
      join(project, 'flags.mjs'),
      `import { GossipClient, GossipState, jsonCodec } from '@gossip/client';
const client = new GossipClient({ address: process.env.GOSSIP_ADDRESS, codec: jsonCodec() });
const flags = new GossipState(client);
await client.connect();
const r = await client.publish('flags/checkout', { on: true });
console.log(r.status, JSON.stringify(flags.get('flags/checkout')));
await client.close();
`,
    );
    const env = { ...npmEnv(), GOSSIP_ADDRESS: address };
    const { stdout: example } = await run(process.execPath, ['flags.mjs'], { cwd: project, env });
    expect(example).toBe('accepted {"on":true}\n');
    const { stdout: fetched } = await run('npx', ['gossip', 'fetch', 'flags/checkout'], { cwd: project, env });
    expect(fetched).toBe('{"on":true}\n');
    // require() of the ES module packages (Node 20.19 and newer)
    const { stdout: required } = await run(
      process.execPath,
      [
        '-e',
        'const { GossipClient } = require("@gossip/client"); const { Store } = require("@gossip/store"); console.log(typeof GossipClient, typeof Store)',
      ],
      { cwd: project },
    );
    expect(required).toBe('function function\n');
    expect(await d.stop()).toEqual({ code: 0, signal: null });
  });

  it('pack - on a Node without require() of ES modules, require() of a library says what it needs instead of ERR_REQUIRE_ESM', async () => {
    // what an older Node resolves require('@gossip/client') to: its `require` export condition
    const stub = join(project, 'node_modules/@gossip/client/dist/require.cjs');
    await expect(run(process.execPath, ['-e', `require(${JSON.stringify(stub)})`])).rejects.toMatchObject({
      stderr: expect.stringContaining(
        '@gossip/client is an ES module: require() of it needs a Node.js that loads ES modules',
      ),
    });
  });
});
