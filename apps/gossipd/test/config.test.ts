import { describe, expect, it } from 'vitest';
import { parseConfig, SETTINGS } from '../src/config.js';

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
