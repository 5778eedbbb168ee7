import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULTS as SERVER } from '@gossip/server';
import { DEFAULTS as STORE } from '@gossip/store';
import { createUser } from '@nats-io/nkeys';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkExposure,
  formatBytes,
  formatMs,
  parseBytes,
  parseConfig,
  parseDuration,
  SETTINGS,
} from '../src/config.js';

const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const parsed = parseConfig(argv, env, false);
  if (parsed.kind !== 'run') throw new Error(`expected a run config, got ${parsed.kind}`);
  return parsed.config;
};

describe('config', () => {
  it('config - defaults: loopback, port 7420, ./gossip-data, interval fsync, 10 MiB data', () => {
    const c = run([]);
    expect(c).toMatchObject({
      host: '127.0.0.1',
      port: 7420,
      dataDir: './gossip-data',
      fsync: 'interval',
      fsyncIntervalMs: 100,
      maxData: 10 * 1024 * 1024,
      segmentSize: 64 * 1024 * 1024,
      tombstoneRetentionMs: 24 * 3600 * 1000,
      maxOutbound: 64 * 1024 * 1024,
      maxSkewMs: 1000,
      adminPort: 7421,
      tokens: [],
      insecure: false,
      logFormat: 'json',
    });
  });

  it("config - defaults are the server's and the store's DEFAULTS", () => {
    expect(run([])).toMatchObject({
      host: SERVER.host,
      port: SERVER.port,
      helloTimeoutMs: SERVER.helloTimeoutMs,
      idleTimeoutMs: SERVER.idleTimeoutMs,
      pingIntervalMs: SERVER.pingIntervalMs,
      maxOutbound: SERVER.maxOutboundBytes,
      maxSkewMs: SERVER.maxSkewMs,
      maxFetchIds: SERVER.maxFetchIds,
      maxPrefixes: SERVER.maxPrefixes,
      legacy: SERVER.legacy,
      legacyWithTokens: SERVER.legacyWithTokens,
      fsync: STORE.fsync,
      fsyncIntervalMs: STORE.fsyncIntervalMs,
      maxData: STORE.maxDataBytes,
      segmentSize: STORE.segmentBytes,
      compactThreshold: STORE.compactThreshold,
      tombstoneRetentionMs: STORE.tombstoneRetentionMs,
    });
  });

  it('config - defaults read as a flag would say them, and parse back to the same value', () => {
    expect([2 ** 26, 10 * 2 ** 20, 2 ** 30, 1536, 1000].map(formatBytes)).toEqual([
      '64MiB',
      '10MiB',
      '1GiB',
      '1536',
      '1000',
    ]);
    expect([100, 1000, 60_000, 24 * 3600_000, 1500].map(formatMs)).toEqual(['100ms', '1s', '60s', '24h', '1500ms']);
    const shown = (flag: string) => SETTINGS.find((s) => s.flag === flag)?.default;
    expect([shown('max-data'), shown('segment-size'), shown('fsync-interval'), shown('tombstone-retention')]).toEqual([
      '10MiB',
      '64MiB',
      '100ms',
      '24h',
    ]);
    for (const s of SETTINGS) {
      if (s.default === undefined) continue;
      if (s.kind === 'bytes') expect(formatBytes(parseBytes(s.default, s))).toBe(s.default);
      if (s.kind === 'ms') expect(formatMs(parseDuration(s.default, s))).toBe(s.default);
    }
  });

  it('config - docs/OPERATIONS.md shows every flag with its variable and default', async () => {
    const docs = await readFile(new URL('../../../docs/OPERATIONS.md', import.meta.url), 'utf8');
    for (const s of SETTINGS) {
      const row = docs.split('\n').find((l) => l.startsWith(`| \`--${s.flag}\` |`));
      expect(row, `--${s.flag}`).toContain(`| \`${s.env}\` |`);
      if (s.default !== undefined) expect(row, `--${s.flag}`).toContain(`| \`${s.default}\` |`);
    }
  });

  it('config - every setting has a GOSSIP_* variable, and a flag wins over it', () => {
    for (const s of SETTINGS) expect(s.env).toMatch(/^GOSSIP_[A-Z_]+$/);
    const env = {
      GOSSIP_PORT: '9000',
      GOSSIP_FSYNC: 'always',
      GOSSIP_MAX_DATA: '1MiB',
      GOSSIP_TOKENS: 'a, b',
      GOSSIP_INSECURE: '1',
    };
    expect(run([], env)).toMatchObject({
      port: 9000,
      fsync: 'always',
      maxData: 1024 * 1024,
      tokens: ['a', 'b'],
      insecure: true,
    });
    expect(run(['--port', '0', '--fsync', 'never', '--token', 'x', '--token', 'y'], env)).toMatchObject({
      port: 0,
      fsync: 'never',
      tokens: ['x', 'y'],
    });
  });

  it('config - sizes and durations take units', () => {
    const c = run([
      '--max-data',
      '512KiB',
      '--segment-size',
      '1GB',
      '--fsync-interval',
      '2s',
      '--tombstone-retention',
      '7d',
      '--max-skew',
      '250',
    ]);
    expect(c.maxData).toBe(512 * 1024);
    expect(c.segmentSize).toBe(1e9);
    expect(c.fsyncIntervalMs).toBe(2000);
    expect(c.tombstoneRetentionMs).toBe(7 * 86400 * 1000);
    expect(c.maxSkewMs).toBe(250);
    expect(run(['--admin-port', 'off']).adminPort).toBeNull();
  });

  it('config - bad values fail with GOSSIP_ERR_CONFIG naming the flag', () => {
    const bad: [string[], RegExp][] = [
      [['--fsync', 'sometimes'], /--fsync/],
      [['--port', '70000'], /--port/],
      [['--max-data', 'lots'], /--max-data/],
      [['--idle-timeout', '5 minutes'], /--idle-timeout/],
      [['--compact-threshold', '2'], /--compact-threshold/],
      [['--tls-cert', 'c.pem'], /--tls-key/],
      [['--log-level', 'loud'], /--log-level/],
      [['--no-such-flag'], /no-such-flag/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseConfig(argv, {}, false)).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_CONFIG', message: expect.stringMatching(message) }),
      );
    }
  });

  it('config - cluster mode: NATS URLs from --cluster or GOSSIP_CLUSTER, a checked name and replicas', () => {
    const here = fileURLToPath(import.meta.url); // a file that can be read
    expect(run([])).toMatchObject({ cluster: [], clusterName: 'gossip', clusterReplicas: 3 });
    expect(run(['--cluster', 'nats://10.0.0.1:4222,nats://10.0.0.2:4222']).cluster).toEqual([
      'nats://10.0.0.1:4222',
      'nats://10.0.0.2:4222',
    ]);
    expect(run([], { GOSSIP_CLUSTER: 'nats://a:4222, b:4222', GOSSIP_CLUSTER_NAME: 'flags' })).toMatchObject({
      cluster: ['nats://a:4222', 'b:4222'],
      clusterName: 'flags',
    });
    // credentials and TLS to NATS; the password from the environment
    expect(
      run(['--cluster', 'a:4222', '--cluster-user', 'edge', '--cluster-tls-ca', here], {
        GOSSIP_CLUSTER_PASSWORD: 'secret',
      }),
    ).toMatchObject({ clusterAuth: { user: 'edge', pass: 'secret' }, clusterTls: { caFile: here } });
    expect(run(['--cluster', 'a:4222'])).toMatchObject({ clusterAuth: {}, clusterTls: undefined });
    const bad: [string[], RegExp][] = [
      [['--cluster', 'http://a:4222'], /--cluster takes NATS URLs/],
      [['--cluster', 'nats://a:4222/x'], /--cluster takes NATS URLs/],
      [['--cluster-name', 'a.b'], /--cluster-name/],
      [['--cluster-name', 'x'.repeat(33)], /--cluster-name/],
      [['--cluster-replicas', '0'], /--cluster-replicas/],
      [['--cluster-replicas', '6'], /--cluster-replicas/],
      [['--cluster', 'a:4222', '--cluster-user', 'u'], /--cluster-user and --cluster-password go together/],
      [
        ['--cluster', 'a:4222', '--cluster-user', 'u', '--cluster-password', 'p', '--cluster-token', 't'],
        /one way: --cluster-user or --cluster-token, not several/,
      ],
      [['--cluster', 'a:4222', '--cluster-tls-cert', here], /--cluster-tls-cert and --cluster-tls-key go together/],
      [['--cluster', 'a:4222', '--cluster-tls-ca', '/nonexistent/ca.pem'], /--cluster-tls-ca: cannot read/],
      [['--cluster-token', 't'], /need --cluster/],
    ];
    for (const [argv, message] of bad) {
      expect(() => parseConfig(argv, {}, false)).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_CONFIG', message: expect.stringMatching(message) }),
      );
    }
  });

  it('config - cluster mode: a NATS credentials file or an nkey seed file, checked at the start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gossip-config-'));
    try {
      // shaped as nsc writes them; a real seed, a JWT that is not (nothing connects here)
      const seed = new TextDecoder().decode(createUser().getSeed());
      // one letter mistyped: the shape of a seed, not its checksum
      const typo = `${seed.slice(0, 20)}${seed[20] === 'A' ? 'B' : 'A'}${seed.slice(21)}`;
      const typoNk = join(dir, 'typo.nk');
      await writeFile(typoNk, `${typo}\n`);
      const creds = join(dir, 'edge.creds');
      await writeFile(
        creds,
        `-----BEGIN NATS USER JWT-----\neyJhbGciOi.e30.c2ln\n------END NATS USER JWT------\n\n` +
          `************************* IMPORTANT *************************\n\n` +
          `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
      );
      const nk = join(dir, 'edge.nk');
      await writeFile(nk, `${seed}\n`);
      const notCreds = join(dir, 'notes.txt');
      await writeFile(notCreds, 'a user: edge\n');
      expect(run(['--cluster', 'a:4222', '--cluster-creds', creds])).toMatchObject({
        clusterAuth: { credsFile: creds },
      });
      expect(run(['--cluster', 'a:4222'], { GOSSIP_CLUSTER_NKEY: nk })).toMatchObject({
        clusterAuth: { nkeyFile: nk },
      });
      const bad: [string[], RegExp][] = [
        [['--cluster', 'a:4222', '--cluster-creds', join(dir, 'none.creds')], /--cluster-creds: cannot read/],
        [
          ['--cluster', 'a:4222', '--cluster-creds', notCreds],
          /--cluster-creds: .* does not hold a user JWT and an nkey seed/,
        ],
        [['--cluster', 'a:4222', '--cluster-creds', nk], /does not hold a user JWT/],
        [
          ['--cluster', 'a:4222', '--cluster-creds', creds, '--cluster-nkey', nk],
          /one way: --cluster-creds or --cluster-nkey/,
        ],
        [['--cluster', 'a:4222', '--cluster-token', 't', '--cluster-creds', creds], /one way/],
        [['--cluster-creds', creds], /need --cluster/],
        // the flag is missing before the file is: the first thing to say
        [['--cluster-creds', join(dir, 'none.creds')], /need --cluster/],
        [['--cluster', 'a:4222', '--cluster-nkey', notCreds], /--cluster-nkey: .* does not hold a user nkey seed/],
        [['--cluster', 'a:4222', '--cluster-nkey', join(dir, 'none.nk')], /--cluster-nkey: cannot read/],
        [['--cluster', 'a:4222', '--cluster-nkey', typoNk], /--cluster-nkey: .* does not hold a user nkey seed/],
        [['--cluster', 'a:4222', '--cluster-tls-key', nk], /--cluster-tls-cert and --cluster-tls-key go together/],
      ];
      for (const [argv, message] of bad) {
        expect(() => parseConfig(argv, {}, false)).toThrow(
          expect.objectContaining({ code: 'GOSSIP_ERR_CONFIG', message: expect.stringMatching(message) }),
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('config - the original protocol is served by default, and --legacy / GOSSIP_LEGACY turn it off', () => {
    expect(run([])).toMatchObject({ legacy: true, legacyWithTokens: false });
    expect(run(['--legacy', 'off']).legacy).toBe(false);
    expect(run([], { GOSSIP_LEGACY: 'off' }).legacy).toBe(false);
    expect(run(['--legacy', 'on'], { GOSSIP_LEGACY: 'off' }).legacy).toBe(true);
    expect(run(['--legacy-with-tokens']).legacyWithTokens).toBe(true);
    expect(run([], { GOSSIP_LEGACY_WITH_TOKENS: 'true' }).legacyWithTokens).toBe(true);
    expect(() => parseConfig(['--legacy', 'maybe'], {}, false)).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_CONFIG', message: expect.stringMatching(/--legacy/) }),
    );
  });

  it('config - --help and --version are recognised', () => {
    expect(parseConfig(['--help'], {}, false).kind).toBe('help');
    expect(parseConfig(['-v'], {}, false).kind).toBe('version');
  });

  it('config - logs are pretty on a TTY and JSON elsewhere, unless told', () => {
    const tty = parseConfig([], {}, true);
    expect(tty.kind === 'run' && tty.config.logFormat).toBe('pretty');
    expect(run(['--log-format', 'pretty']).logFormat).toBe('pretty');
  });
});

describe('config - token sources', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  const file = async (text: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'gossipd-config-'));
    dirs.push(dir);
    const path = join(dir, 'tokens');
    await writeFile(path, text);
    return path;
  };
  const refused = (argv: string[], env: NodeJS.ProcessEnv, message: RegExp) =>
    expect(() => parseConfig(argv, env, false)).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_CONFIG', message: expect.stringMatching(message) }),
    );

  it('config - GOSSIP_TOKENS set to nothing but empty items is refused, not read as no auth', () => {
    for (const value of ['', ',', ' , ,'])
      refused([], { GOSSIP_TOKENS: value }, /^GOSSIP_TOKENS is set but holds no token/);
  });

  it('config - an empty GOSSIP_TOKENS is refused even beside a --token-file with tokens: each source set must hold one', async () => {
    const path = await file('t1\n');
    refused(['--token-file', path], { GOSSIP_TOKENS: '' }, /^GOSSIP_TOKENS is set but holds no token/);
  });

  it('config - GOSSIP_TOKENS drops empty items around real tokens, and a --token flag wins over it', () => {
    expect(run([], { GOSSIP_TOKENS: 'a,,b,' }).tokens).toEqual(['a', 'b']);
    expect(run(['--token', 'x'], { GOSSIP_TOKENS: '' }).tokens).toEqual(['x']);
  });

  it('config - an empty or comment-only --token-file is refused, naming the flag and the path', async () => {
    for (const text of ['', '\n\n', '# service tokens\n  # none yet\n\n']) {
      const path = await file(text);
      refused(['--token-file', path], {}, new RegExp(`^--token-file ${path} holds no token`));
      refused([], { GOSSIP_TOKEN_FILE: path }, new RegExp(`^GOSSIP_TOKEN_FILE ${path} holds no token`));
      // Tokens from elsewhere do not make an empty file acceptable: it is still a mistake.
      refused(['--token', 'a', '--token-file', path], {}, /--token-file/);
    }
  });

  it('config - an empty --token-file path or GOSSIP_TOKEN_FILE is refused', () => {
    refused(['--token-file', ''], {}, /^--token-file is empty/);
    refused([], { GOSSIP_TOKEN_FILE: '' }, /^GOSSIP_TOKEN_FILE is empty/);
  });

  it('config - a --token-file with tokens, comments and CRLF line ends gives its tokens', async () => {
    const path = await file('# ops\r\na\r\n\r\n  b  \r\n');
    expect(run(['--token-file', path, '--token', 'c']).tokens).toEqual(['c', 'a', 'b']);
  });

  it('config - an empty --token is refused', () => {
    refused(['--token', ''], {}, /an auth token is empty/);
  });

  it('config - other empty variables still read as unset and take their default', () => {
    expect(run([], { GOSSIP_HOST: '', GOSSIP_PORT: '', GOSSIP_ADMIN_HOST: '', GOSSIP_INSECURE: '' })).toMatchObject({
      host: '127.0.0.1',
      port: 7420,
      adminHost: '127.0.0.1',
      insecure: false,
      tokens: [],
    });
  });
});

describe('config - exposure', () => {
  const insecure = (argv: string[], message: RegExp) =>
    expect(() => checkExposure(run(argv))).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INSECURE', message: expect.stringMatching(message) }),
    );

  it('config - a non-loopback --host without tokens is refused, naming --token and --insecure', () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3', 'example.com']) {
      insecure(['--host', host], /refusing to listen on .*--token.*--insecure/);
    }
  });

  it('config - a non-loopback --admin-host without tokens is refused, naming --admin-host, --token and --insecure', () => {
    insecure(['--admin-host', '0.0.0.0'], /admin listener on 0\.0\.0\.0.*--admin-host.*--token.*--insecure/);
    insecure(['--admin-host', '::', '--admin-port', '0'], /admin listener on ::/);
  });

  it('config - tokens, --insecure, loopback addresses or --admin-port off let it start', () => {
    const ok = (argv: string[], env: NodeJS.ProcessEnv = {}) =>
      expect(() => checkExposure(run(argv, env))).not.toThrow();
    ok([]);
    ok(['--host', 'localhost', '--admin-host', '::1']);
    ok(['--host', '127.0.0.2', '--admin-host', '127.1.2.3']);
    ok(['--host', '0.0.0.0', '--admin-host', '0.0.0.0', '--token', 's3cret']);
    ok(['--host', '0.0.0.0', '--admin-host', '0.0.0.0'], { GOSSIP_TOKENS: 's3cret' });
    ok(['--host', '0.0.0.0', '--admin-host', '0.0.0.0', '--insecure']);
    ok(['--admin-host', '0.0.0.0', '--admin-port', 'off']);
  });
});
