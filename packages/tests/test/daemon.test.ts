import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AckStatus, Durability, FrameKind, MessageFlags, now } from '@gossip/protocol';
import { uncheckedEncoder } from '@gossip/protocol/testing';
import { GOSSIPD, wirePublisher } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../../apps/gossipd/src/config.js';
import { fatalError, harness } from './harness.js';

// The daemon around the server: flags and GOSSIP_* variables, the admin listener,
// and signals.

const h = harness();

const VERSION = (
  JSON.parse(readFileSync(new URL('../../../apps/gossipd/package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** Every metric name apps/gossipd/src/metrics.ts registers. */
const METRIC_NAMES = [
  ...readFileSync(new URL('../../../apps/gossipd/src/metrics.ts', import.meta.url), 'utf8').matchAll(
    /\b(?:counter|gauge|counterByReason|histogram)\(\s*'(gossip_[a-z_]+)'/g,
  ),
]
  .map((m) => m[1] as string)
  // an edge's own, served in cluster mode only (cluster.test.ts holds them to docs/CLUSTER.md)
  .filter((name) => !name.startsWith('gossip_cluster_'));

const DIST = fileURLToPath(new URL('../../../apps/gossipd/dist/', import.meta.url));

/**
 * A copy of the build, its one file, in a temporary folder outside the workspace: no
 * node_modules on its way up. Resolves with its path.
 */
async function copyOfBuild(): Promise<string> {
  const bin = await h.tmp('gossipd-bin-');
  await copyFile(join(DIST, 'main.cjs'), join(bin, 'main.cjs'));
  return join(bin, 'main.cjs');
}

describe('start-up', () => {
  // gossipd is one CommonJS file with its dependencies inside (apps/gossipd/tsup.config.ts):
  // it needs nothing beside it, and Node's own loader runs it, source maps or not.
  it.each<{ name: string; copy: boolean; env: Record<string, string> }>([
    { name: 'from a copy of its one file, with no node_modules', copy: true, env: { NODE_PATH: '' } },
    { name: 'with --enable-source-maps', copy: false, env: { NODE_OPTIONS: '--enable-source-maps' } },
  ])('start-up - starts and serves $name', async ({ copy, env }) => {
    const d = await h.start({ ...(copy ? { bin: await copyOfBuild() } : {}), env });
    const a = await h.live(d.port);
    const ts = now();
    expect((await a.publish('k', ts, 'v')).status).toBe(AckStatus.Accepted);
    const c = await h.connect(d.port, { since: ts });
    const { messages } = await c.replay();
    expect(messages.map((m) => [m.id, m.data.toString()])).toEqual([['k', 'v']]);
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    expect(d.logs.map((l) => l.msg)).toContain('stopped cleanly');
    expect(d.stderr).toBe('');
  });
});

describe('flags', () => {
  it('flags - --help lists every setting with its variable and exits 0', async () => {
    expect(SETTINGS.length).toBeGreaterThan(20);
    for (const args of [['--help'], ['-h']]) {
      const run = await h.spawn(args);
      expect(run.code).toBe(0);
      for (const s of SETTINGS) {
        expect(run.stdout).toContain(`--${s.flag} `);
        expect(run.stdout).toContain(s.env);
      }
      expect(run.stdout).toContain('--version');
      expect(run.stderr).toBe('');
    }
  });

  it('flags - --version prints the version and exits 0', async () => {
    const run = await h.spawn(['--version']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`gossipd ${VERSION} (protocol 1)\n`);
  });

  it("flags - the listening line and the welcome carry apps/gossipd/package.json's version", async () => {
    const d = await h.start();
    expect(d.logs.find((l) => l.msg.includes('listening on gossip'))?.msg).toMatch(
      new RegExp(`^gossipd ${VERSION} listening on`),
    );
    const c = await h.connect(d.port, { since: null });
    expect(c.welcome.server).toBe(`gossipd/${VERSION}`);
  });

  it.each<{ name: string; args: string[]; env: Record<string, string>; message: RegExp }>([
    { name: 'an unknown flag', args: ['--nope'], env: {}, message: /--nope/ },
    { name: 'a stray argument', args: ['extra'], env: {}, message: /extra/ },
    { name: 'a bad size', args: ['--max-data', 'lots'], env: {}, message: /--max-data.*lots/ },
    { name: 'a bad fsync mode', args: ['--fsync', 'sometimes'], env: {}, message: /--fsync.*sometimes/ },
    { name: 'a port out of range', args: ['--port', '70000'], env: {}, message: /--port.*70000/ },
    { name: 'a bad duration', args: ['--hello-timeout', 'soon'], env: {}, message: /--hello-timeout.*soon/ },
    { name: 'a bad ratio', args: ['--compact-threshold', '2'], env: {}, message: /--compact-threshold/ },
    { name: 'a bad log level', args: ['--log-level', 'loud'], env: {}, message: /--log-level.*loud/ },
    {
      name: 'a bad variable',
      args: [],
      env: { GOSSIP_MAX_CONNECTIONS: '0' },
      message: /GOSSIP_MAX_CONNECTIONS.*"0"/,
    },
  ])('flags - $name exits 2 with a message', async ({ args, env, message }) => {
    const dir = await h.tmp();
    const run = await h.spawn(['--data-dir', dir, '--port', '0', '--admin-port', 'off', ...args], env);
    expect(run.code).toBe(2);
    expect(run.port).toBeUndefined();
    expect(run.stderr).toMatch(/^gossipd: /);
    expect(run.stderr).toMatch(message);
  });

  it('flags - every setting can come from its GOSSIP_* variable', async () => {
    const dir = await h.tmp();
    const run = await h.spawn([], {
      GOSSIP_PORT: '0',
      GOSSIP_ADMIN_PORT: '0',
      GOSSIP_DATA_DIR: dir,
      GOSSIP_LOG_FORMAT: 'json',
      GOSSIP_MAX_DATA: '1KiB',
      GOSSIP_FSYNC: 'always',
      GOSSIP_MAX_FETCH_IDS: '2',
      GOSSIP_PING_INTERVAL: '7s',
      GOSSIP_TOKENS: 'env-token',
    });
    expect(run.port).toBeGreaterThan(0);
    expect(run.adminPort).toBeGreaterThan(0);
    expect(run.logs.find((l) => l.msg.startsWith('gossipd'))).toMatchObject({ dataDir: dir, fsync: 'always' });
    const c = await h.connect(run.port as number, { since: null, token: 'env-token' });
    expect(c.welcome).toMatchObject({ maxDataBytes: 1024, pingIntervalMs: 7000 });
    await c.replay();
    expect(await c.publish('k', now(), 'v')).toMatchObject({
      status: AckStatus.Accepted,
      durability: Durability.Synced,
    });
    await expect(c.fetch(['a', 'b', 'c'])).rejects.toMatchObject({ code: 'GOSSIP_ERR_TOO_MANY_IDS' });
    const res = await fetch(`http://127.0.0.1:${run.adminPort}/healthz`);
    expect(res.status).toBe(200);
  });

  it('flags - a flag wins over its variable', async () => {
    const d = await h.start({ args: ['--max-data', '2KiB'], env: { GOSSIP_MAX_DATA: '1KiB' } });
    const c = await h.connect(d.port, { since: null });
    expect(c.welcome.maxDataBytes).toBe(2048);
  });
});

describe('admin', () => {
  it('admin - /healthz and /readyz answer 200, unknown paths 404, other methods 405', async () => {
    const d = await h.start();
    expect(await d.admin('/healthz')).toEqual({ status: 200, text: 'ok\n' });
    expect(await d.admin('/readyz')).toEqual({ status: 200, text: 'ready\n' });
    expect((await d.admin('/nope')).status).toBe(404);
    expect((await d.admin('/metrics', 'POST')).status).toBe(405);
  });

  it('admin - /metrics has every registered metric and the counters move', async () => {
    const d = await h.start();
    expect(METRIC_NAMES.length).toBeGreaterThan(20);
    const { status, text } = await d.admin('/metrics');
    expect(status).toBe(200);
    for (const name of METRIC_NAMES) expect(text).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    expect(text).toMatch(/^process_resident_memory_bytes /m);
    // the first scrape makes the registry: its event-loop figures are numbers already
    expect(text).not.toMatch(/ nan$/im);
    expect(Number(/^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(text)?.[1])).toBeLessThan(60);
    expect(await d.metric('gossip_publishes_total')).toBe(0);

    const c = await h.live(d.port);
    const ts = now();
    await c.publish('k', ts, 'v');
    await c.publish('k', ts, 'stale');
    await c.emit('e', ts, 'transient', true);
    await c.fetch(['k']);
    c.send(c.enc.publish(99, 'x'.repeat(10), now() + 3600_000_000_000n, Buffer.from('ahead')).take());
    await c.next((f) => f.kind === FrameKind.Ack && f.reqId === 99);

    const expected: Record<string, number> = {
      gossip_connections: 1,
      gossip_publishes_total: 3,
      gossip_publishes_stale_total: 1,
      gossip_emits_total: 1,
      gossip_messages_in_total: 4,
      gossip_refused_total: 1,
      gossip_fetches_total: 1,
      gossip_store_ids: 1,
      gossip_store_tombstones: 0,
    };
    for (const [name, value] of Object.entries(expected)) expect([name, await d.metric(name)]).toEqual([name, value]);
    expect(await d.metric('gossip_connections_accepted_total')).toBeGreaterThanOrEqual(1);
    expect(await d.metric('gossip_bytes_in_total')).toBeGreaterThan(0);
    expect(await d.metric('gossip_bytes_out_total')).toBeGreaterThan(0);
    expect(await d.metric('gossip_messages_out_total')).toBe(2);
    expect(await d.metric('gossip_store_newest_timestamp_seconds')).toBeCloseTo(Number(ts) / 1e9, 3);
  });

  it('admin - docs/OPERATIONS.md lists every family /metrics serves, with its type, and no two families share a name', async () => {
    const d = await h.start();
    const { text } = await d.admin('/metrics');
    const served = new Map(
      [...text.matchAll(/^# TYPE (gossip_[a-z_]+) (\w+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
    );
    const doc = readFileSync(new URL('../../../docs/OPERATIONS.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Metrics'), doc.indexOf('## Durability'));
    const listed = new Map(
      [...section.matchAll(/^\| `(gossip_[a-z_]+)` \| (\w+) \|/gm)].map((m) => [m[1] as string, m[2] as string]),
    );
    expect(listed.size).toBeGreaterThan(30);
    expect(Object.fromEntries(listed)).toEqual(Object.fromEntries(served));
    // OpenMetrics names a counter's family without `_total`: it must not be another family's name
    const families = [...served].map(([name, type]) => (type === 'counter' ? name.replace(/_total$/, '') : name));
    expect(new Set(families).size).toBe(families.length);
    // times are Unix seconds, named so
    for (const name of served.keys()) if (/_ts_|timestamp/.test(name)) expect(name).toMatch(/_timestamp_seconds$/);
  });

  it('admin - refusals and disconnects are counted by reason; the histograms take one observation per group commit and per replay', async () => {
    const d = await h.start({ args: ['--fsync', 'always'] });
    const a = await h.live(d.port);
    const ts = now();
    for (let i = 0; i < 20; i++) a.send(a.enc.publish(i + 1, `k${i}`, ts + BigInt(i), Buffer.from('v')).take());
    await a.next((f) => f.kind === FrameKind.Ack && f.reqId === 20);
    // stale publishes between accepted ones, in one write: still one observation per group commit
    for (let i = 0; i < 20; i++)
      a.enc.publish(100 + i, `k${i}`, i % 2 === 0 ? ts : ts + 100n + BigInt(i), Buffer.from('w'));
    a.send(a.enc.take());
    await a.next((f) => f.kind === FrameKind.Ack && f.reqId === 119);
    a.send(uncheckedEncoder().publish(99, 'x'.repeat(300), ts, Buffer.from('v')).take());
    await a.next((f) => f.kind === FrameKind.Ack && f.reqId === 99);
    const b = await h.connect(d.port, { since: ts });
    expect((await b.replay()).messages).toHaveLength(20);
    b.socket.destroy();
    await d.waitLog((l) => l.msg === 'connection closed' && l.reason === 'client_closed');
    const { text } = await d.admin('/metrics');
    expect(text).toMatch(/^gossip_refused_total\{reason="id_too_long"\} 1$/m);
    expect(text).toMatch(/^gossip_disconnects_total\{reason="client_closed"\} 1$/m);
    const count = (name: string) => Number(new RegExp(`^${name}_count (\\S+)$`, 'm').exec(text)?.[1]);
    const commits = count('gossip_store_commit_records');
    const records = Number(/^gossip_store_commit_records_sum (\S+)$/m.exec(text)?.[1]);
    expect(records).toBe(30);
    expect(commits).toBeGreaterThanOrEqual(1);
    expect(commits).toBeLessThanOrEqual(30);
    expect(count('gossip_publish_ack_seconds')).toBe(commits);
    expect(count('gossip_store_fsync_seconds')).toBeGreaterThanOrEqual(commits);
    expect(count('gossip_replay_seconds')).toBe(1);
    expect(text).toMatch(/^gossip_publish_ack_seconds_bucket\{le="\+Inf"\} \d+$/m);
    // the log: each connection's open and close with its address, name and reason; the refusal with its code
    const logs = d.logs;
    expect(logs.filter((l) => l.msg === 'client connected')).toHaveLength(2);
    expect(logs.find((l) => l.msg === 'client connected')).toMatchObject({
      remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
    });
    expect(logs.find((l) => l.msg === 'request refused')).toMatchObject({ code: 'GOSSIP_ERR_ID_TOO_LONG', level: 30 });
  });

  it('admin - a flood of refused requests writes at most 10 log lines a second, the next one counting what it left out', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const raw = uncheckedEncoder();
    for (let i = 1; i <= 200; i++) a.send(raw.publish(i, '', now(), Buffer.from('v')).take());
    await a.next((f) => f.kind === FrameKind.Ack && f.reqId === 200);
    expect(await d.metric('gossip_refused_total')).toBe(200);
    const lines = () => d.logs.filter((l) => l.msg === 'request refused');
    expect(lines().length).toBeLessThanOrEqual(10);
    // at the window's end, one line says how many were left out
    const summary = await d.waitLog((l) => typeof l.suppressed === 'number');
    expect(summary.msg).toMatch(/^request refused: \d+ more left out of the log$/);
    expect(lines().length + (summary.suppressed as number)).toBe(200);
  });

  it('admin - connections that close before a hello are counted each, and logged at most 10 a second', async () => {
    const d = await h.start();
    for (let i = 0; i < 30; i++) {
      const s = connect(d.port, '127.0.0.1');
      await once(s, 'connect');
      s.end();
      await once(s, 'close');
    }
    const summary = await d.waitLog((l) => typeof l.suppressed === 'number' && l.msg.startsWith('connection closed'));
    const lines = d.logs.filter((l) => l.msg === 'connection closed');
    expect(lines.length).toBeLessThanOrEqual(10);
    expect(lines.length + (summary.suppressed as number)).toBe(30);
    expect(await d.metric('gossip_disconnects_total')).toBe(30);
  });

  it('admin - a copy of the build with no node_modules serves /metrics: prom-client is inside it', async () => {
    // Outside the workspace and without NODE_PATH, nothing but the one file can be loaded.
    const d = await h.start({ bin: await copyOfBuild(), env: { NODE_PATH: '' } });
    const { status, text } = await d.admin('/metrics');
    expect(status).toBe(200);
    for (const name of METRIC_NAMES) expect(text).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    expect(await d.admin('/readyz')).toEqual({ status: 200, text: 'ready\n' });
    const a = await h.live(d.port);
    expect((await a.publish('k', now(), 'v')).status).toBe(AckStatus.Accepted);
    expect(await d.stop()).toEqual({ code: 0, signal: null });
    expect(d.stderr).toBe('');
  });

  it('admin - POST /compact runs a compaction and answers its result', async () => {
    const d = await h.start();
    const res = await d.admin('/compact', 'POST');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toBeTypeOf('object');
  });
});

describe('signals', () => {
  it('signals - SIGTERM closes clients with GOSSIP_ERR_SHUTTING_DOWN, exits 0, and the data survives a restart', async () => {
    const d = await h.start({ args: ['--fsync', 'interval', '--fsync-interval', '1h'] });
    const a = await h.live(d.port);
    const ts = now();
    const acks = await Promise.all([
      a.publish('k', ts, 'v1'),
      a.publish('gone', ts, ''),
      a.publish('k2', ts + 1n, 'v2'),
    ]);
    expect(acks.map((x) => [x.status, x.durability])).toEqual(Array(3).fill([AckStatus.Accepted, Durability.Written]));

    d.child.kill('SIGTERM');
    const error = await fatalError(a);
    expect(error.code).toBe('GOSSIP_ERR_SHUTTING_DOWN');
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.logs.map((l) => l.msg)).toContain('stopped cleanly');
    expect(d.stderr).toBe('');

    const d2 = await h.start({ dataDir: d.dataDir });
    const c = await h.connect(d2.port, { since: ts, epoch: a.welcome.epoch });
    expect(c.welcome.epoch).toBe(a.welcome.epoch);
    const { messages, done } = await c.replay();
    expect(messages.map((m) => [m.id, m.ts, m.data.toString(), m.flags])).toEqual([
      ['k', ts, 'v1', MessageFlags.Replayed],
      ['gone', ts, '', MessageFlags.Replayed],
      ['k2', ts + 1n, 'v2', MessageFlags.Replayed],
    ]);
    expect(done.newestTs).toBe(ts + 1n);
    expect(await c.fetch(['k'])).toMatchObject([{ id: 'k', found: true, ts }]);
  });

  it('signals - one Ctrl-C delivered twice at once (the terminal and a script runner) is one signal: a clean stop', async () => {
    const d = await h.start();
    const stuck = await h.connect(d.port, { since: null });
    stuck.socket.pause();
    d.child.kill('SIGINT');
    await d.waitLog((l) => l.msg.startsWith('stopping'));
    // the same Ctrl-C, forwarded: while the stop waits for the stuck client
    d.child.kill('SIGINT');
    setTimeout(() => stuck.socket.destroy(), 700);
    expect(await d.exited).toEqual({ code: 0, signal: null });
    expect(d.logs.map((l) => l.msg)).toContain('stopped cleanly');
    expect(d.logs.map((l) => l.msg)).not.toContain('second signal: exiting at once');
  });

  /**
   * gossipd in a child process whose log output is read until it listens, then never
   * again, after enough connections to fill the pipe: its log writes stall.
   */
  async function stalledReader(): Promise<{
    child: ReturnType<typeof spawn>;
    port: number;
    exited: Promise<unknown[]>;
  }> {
    const child = spawn(
      process.execPath,
      [GOSSIPD, '--port', '0', '--admin-port', 'off', '--data-dir', await h.tmp(), '--log-format', 'json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    h.keep({ close: async () => void child.kill('SIGKILL') });
    const exited = once(child, 'exit');
    const stdout = child.stdout as NodeJS.ReadableStream;
    let head = '';
    const port = await new Promise<number>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        head += chunk.toString();
        const m = /"port":(\d+)/.exec(head);
        if (m) {
          // the reader stops here, for good: the pipe fills and gossipd's log writes stall
          stdout.removeListener('data', onData);
          stdout.pause();
          resolve(Number(m[1]));
        }
      };
      stdout.on('data', onData);
      child.once('exit', (code) => reject(new Error(`gossipd exited (${code}) before listening: ${head}`)));
    });
    // each connection logs two lines ("client connected", "connection closed"): far past a pipe's 64 KiB
    for (let i = 0; i < 600; i++) {
      const c = await h.connect(port, { since: null });
      c.socket.destroy();
    }
    return { child, port, exited };
  }

  it('signals - SIGTERM ends gossipd (exit 0) even when whatever reads its log output has stopped reading', async () => {
    const { child, port, exited } = await stalledReader();
    const c = await h.connect(port, { since: null });
    child.kill('SIGTERM');
    // the server still closes its clients: the stop itself does not wait on the log
    expect((await fatalError(c)).code).toBe('GOSSIP_ERR_SHUTTING_DOWN');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });

  it('exit - a gossipd that cannot start exits (code 1) also when its stdout is a full pipe nobody reads', async () => {
    const held = await h.start();
    const dir = await h.tmp();
    // A shell pipeline, as an operator's: a FIFO whose reader never reads, filled before
    // gossipd writes to it; gossipd fails on a data folder another one holds.
    const script = [
      `mkfifo "${dir}/out"`,
      `sleep 60 < "${dir}/out" & reader=$!`,
      `exec 3> "${dir}/out"`,
      'head -c 65536 /dev/zero >&3',
      `"${process.execPath}" "${GOSSIPD}" --port 0 --admin-port off --data-dir "${held.dataDir}" --log-format json >&3 2>/dev/null`,
      'code=$?',
      'kill $reader',
      'exit $code',
    ].join('\n');
    const child = spawn('/bin/sh', ['-c', script], { stdio: 'ignore' });
    h.keep({ close: async () => void child.kill('SIGKILL') });
    const [code] = await once(child, 'exit');
    expect(code).toBe(1);
  });

  it('signals - a second SIGTERM exits at once (code 1) also when the log reader has stopped reading', async () => {
    const { child, port, exited } = await stalledReader();
    // a client that stops reading holds the graceful stop: the window for the second signal
    const stuck = await h.connect(port, { since: null });
    stuck.socket.pause();
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 700)); // past the 500 ms of a repeated signal
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 1, signal: null });
  });

  it('signals - SIGTERM while the store recovers: the recovery ends, the store is closed (its checkpoint written), exit 0', async () => {
    // a log of 1 M records in small segments, and no checkpoint (a crash): a recovery of seconds
    const d = await h.start({ args: ['--segment-size', '1MiB'] });
    const pub = await wirePublisher(d.port);
    const total = 1_000_000;
    let acked = 0;
    const all = new Promise<void>((resolve, reject) => {
      pub.onAck = (n) => {
        acked += n;
        if (acked === total) resolve();
      };
      pub.onError = reject;
    });
    const data = Buffer.from('v');
    for (let i = 0; i < total; i++) pub.send(`k${i % 50_000}`, data);
    pub.flush();
    await all;
    await pub.close();
    await d.kill();

    const child = spawn(
      process.execPath,
      [GOSSIPD, '--port', '0', '--admin-port', 'off', '--data-dir', d.dataDir, '--log-format', 'json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    h.keep({ close: async () => void child.kill('SIGKILL') });
    const exited = once(child, 'exit');
    const msgs: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const msg = (JSON.parse(line) as { msg: string }).msg;
      msgs.push(msg);
      if (msg === 'recovering' && msgs.filter((m) => m === 'recovering').length === 1) child.kill('SIGTERM');
    });
    const [code] = await exited;
    expect(code).toBe(0);
    // the signal came while the store recovered; it was closed once open, and only then said so
    const at = (m: string) => msgs.indexOf(m);
    expect(at('recovering')).toBeGreaterThanOrEqual(0);
    expect(at('stopping: no new connections, flushing and fsyncing')).toBeGreaterThanOrEqual(0);
    expect(at('stopping: no new connections, flushing and fsyncing')).toBeLessThan(at('store recovered'));
    expect(at('store recovered')).toBeLessThan(at('stopped cleanly'));
    expect(msgs.some((m) => m.includes('listening'))).toBe(false);
    // the clean close wrote the checkpoint: the next start loads it instead of scanning
    const d2 = await h.start({ dataDir: d.dataDir });
    expect(d2.logs.find((l) => l.msg === 'store recovered')).toMatchObject({ checkpoint: true, ids: 50_000 });
  }, 120_000);

  it('signals - a second SIGTERM while stopping exits at once with code 1', async () => {
    const d = await h.start();
    // A client that stops reading never takes the server's FIN, so the graceful stop
    // waits for it (up to the close grace): the window for the second signal.
    const stuck = await h.connect(d.port, { since: null });
    stuck.socket.pause();
    d.child.kill('SIGTERM');
    await d.waitLog((l) => l.msg.startsWith('stopping'));
    // past the 500 ms in which a repeated signal counts as the first one
    await new Promise((r) => setTimeout(r, 700));
    d.child.kill('SIGTERM');
    expect(await d.exited).toEqual({ code: 1, signal: null });
    expect(d.logs.map((l) => l.msg)).toContain('second signal: exiting at once');
    expect(d.logs.map((l) => l.msg)).not.toContain('stopped cleanly');
  });
});
