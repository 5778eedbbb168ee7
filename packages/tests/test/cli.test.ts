import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, open, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type ClientMessage, GossipClient, utf8Codec } from '@gossip/client';
import type { Gossipd } from '@gossip/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { iso } from '../src/iso.js';
import { harness } from './harness.js';

// End to end: the built `gossip` CLI against the real gossipd.

/** The built CLI: turbo builds it before these tests run. */
const CLI = fileURLToPath(new URL('../../../apps/cli/dist/main.js', import.meta.url));

const h = harness();
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function start(args: string[] = [], dataDir?: string): Promise<Gossipd> {
  return h.start({ args, ...(dataDir ? { dataDir } : {}) });
}

async function client(d: Gossipd, since: 'all' | 'now' = 'now'): Promise<GossipClient<string>> {
  const c = new GossipClient<string>({ address: `127.0.0.1:${d.port}`, codec: utf8Codec, since });
  h.keep(c);
  await c.connect();
  return c;
}

/** The environment without any GOSSIP_* variable of the caller, plus `env`. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GOSSIP_')));
  return { ...clean, ...env };
}

function spawnCli(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: environment(env) });
  children.push(child);
  return child;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end; `input` is its stdin (empty by default). */
async function gossip(
  args: string[],
  options: { d?: Gossipd; input?: string | Buffer; env?: Record<string, string> } = {},
): Promise<Run> {
  const env = { ...(options.d ? { GOSSIP_ADDRESS: `127.0.0.1:${options.d.port}` } : {}), ...options.env };
  const child = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdin?.end(options.input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** A running `gossip sub`: its stdout lines as they come. */
function subscribe(d: Gossipd, args: string[]) {
  const child = spawnCli(['sub', ...args], { GOSSIP_ADDRESS: `127.0.0.1:${d.port}` });
  child.stdin?.end();
  const lines: string[] = [];
  let stderr = '';
  let waiter: (() => void) | undefined;
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    waiter?.();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const until = async (done: () => boolean) => {
    while (!done()) {
      await Promise.race([
        new Promise<void>((resolve) => {
          waiter = resolve;
        }),
        closed.then(([code]) => {
          throw new Error(`gossip sub exited (${code}) after ${lines.length} lines: ${stderr}`);
        }),
      ]);
    }
  };
  return {
    lines,
    get stderr() {
      return stderr;
    },
    closed,
    /** Resolves once at least `n` lines were printed (rejects if the process ends first). */
    async waitLines(n: number): Promise<string[]> {
      await until(() => lines.length >= n);
      return lines.slice(0, n);
    },
    /** Resolves once a line is ` <id> <value>` for `id` (rejects if the process ends first). */
    async waitFor(id: string): Promise<void> {
      await until(() => lines.some((l) => l.split(' ')[1] === id));
    },
    /** SIGINT, and the exit code. */
    async interrupt(): Promise<number | null> {
      child.kill('SIGINT');
      const [code] = await closed;
      return code;
    },
  };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

interface InspectJson {
  segments: number;
  records: number;
  ids: number;
  tombstones: number;
  deadRatio: number;
  corruptions: number;
  verified: boolean;
  leftovers: string[];
  metaError: string | null;
  segmentFiles: { name: string; bytes: number; records: number; corrupt: unknown[] }[];
}

async function inspectJson(dir: string): Promise<{ run: Run; report: InspectJson }> {
  const run = await gossip(['inspect', dir, '--json']);
  return { run, report: JSON.parse(run.stdout) as InspectJson };
}

describe('cli - publishing', () => {
  it('cli - pub prints accepted and exits 0; a pub with an older --ts exits 3 as stale', async () => {
    const d = await start();
    const first = await gossip(['pub', 'k', 'v1'], { d });
    expect(first.code).toBe(0);
    const m = /^accepted (\d+) written\n$/.exec(first.stdout);
    expect(m, first.stdout).not.toBeNull();
    const ts = BigInt(m?.[1] as string);
    const older = (ts - 1n).toString();
    const stale = await gossip(['pub', 'k', 'v0', '--ts', older], { d });
    expect(stale).toMatchObject({ code: 3, stdout: `stale ${older}\n` });
    const same = await gossip(['pub', 'k', 'again', '--ts', ts.toString()], { d });
    expect(same.code).toBe(3);
    expect(await gossip(['fetch', 'k'], { d })).toMatchObject({ code: 0, stdout: 'v1\n' });
    const newer = await gossip(['pub', 'k', 'v2', '--ts', (ts + 1n).toString()], { d });
    expect(newer).toMatchObject({ code: 0, stdout: `accepted ${ts + 1n} written\n` });
  });

  it('cli - pub reads the value from stdin when it is absent, and refuses an empty one', async () => {
    const d = await start();
    expect((await gossip(['pub', 'k'], { d, input: 'line one\nline two' })).code).toBe(0);
    expect(await gossip(['fetch', 'k'], { d })).toMatchObject({ code: 0, stdout: 'line one\nline two\n' });
    const empty = await gossip(['pub', 'e'], { d, input: '' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('tombstone');
  });

  it('cli - del then fetch exits 4', async () => {
    const d = await start();
    expect((await gossip(['pub', 'k', 'v'], { d })).code).toBe(0);
    const del = await gossip(['del', 'k'], { d });
    expect(del.code).toBe(0);
    expect(del.stdout).toMatch(/^accepted \d+ written\n$/);
    expect(await gossip(['fetch', 'k'], { d })).toMatchObject({ code: 4, stdout: '', stderr: 'k: deleted\n' });
    expect(await gossip(['fetch', 'never'], { d })).toMatchObject({ code: 4, stderr: 'never: not found\n' });
    expect((await gossip(['del', 'k', 'value'], { d })).code).toBe(2);
  });

  it('cli - emit reaches a connected client as transient and stores nothing', async () => {
    const d = await start();
    const c = await client(d);
    const got = new Promise<ClientMessage<string>>((resolve) => c.on('message', resolve));
    const run = await gossip(['emit', 'presence/alice', 'online'], { d });
    expect(run).toMatchObject({ code: 0, stdout: 'sent\n' });
    expect(await got).toMatchObject({ id: 'presence/alice', value: 'online', transient: true });
    expect((await gossip(['fetch', 'presence/alice'], { d })).code).toBe(4);
    // A refused emit (ts far ahead of the server's clock) is a failure.
    const ahead = await gossip(['emit', 'x', 'y', '--ts', (BigInt(Date.now() + 3_600_000) * 1_000_000n).toString()], {
      d,
    });
    expect(ahead.code).toBe(1);
    expect(ahead.stderr).toContain('GOSSIP_ERR_TS_AHEAD');
  });
});

describe('cli - reading', () => {
  it('cli - fetch of several ids prints "<time> <id> <value>" lines, and --json one object per id', async () => {
    const d = await start();
    const c = await client(d);
    const a = await c.publish('a', 'one');
    const b = await c.publish('b', 'two words');
    const gone = await c.delete('gone');
    const both = await gossip(['fetch', 'a', 'b'], { d });
    expect(both).toMatchObject({ code: 0, stdout: `${iso(a.ts)} a "one"\n${iso(b.ts)} b "two words"\n` });
    const some = await gossip(['fetch', 'a', 'gone', 'nope'], { d });
    expect(some).toMatchObject({
      code: 4,
      stdout: `${iso(a.ts)} a "one"\n${iso(gone.ts)} gone (deleted)\n- nope (not found)\n`,
    });
    const json = await gossip(['fetch', 'a', 'b', 'gone', 'nope', '--json'], { d });
    expect(json.code).toBe(4);
    expect(
      json.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { id: 'a', found: true, deleted: false, ts: a.ts.toString(), time: iso(a.ts), value: 'one' },
      { id: 'b', found: true, deleted: false, ts: b.ts.toString(), time: iso(b.ts), value: 'two words' },
      { id: 'gone', found: false, deleted: true, ts: gone.ts.toString(), time: iso(gone.ts) },
      { id: 'nope', found: false, deleted: false, ts: null, time: null },
    ]);
    // Bytes that are not UTF-8 come out as base64.
    expect((await gossip(['pub', 'bin'], { d, input: Buffer.from([0xff, 0x00, 0xfe]) })).code).toBe(0);
    const bin = await gossip(['fetch', 'bin', '--json'], { d });
    expect(JSON.parse(bin.stdout)).toMatchObject({ id: 'bin', found: true, base64: '/wD+' });
  });

  it('cli - sub --since all --json prints every message as JSON lines and exits 0 on SIGINT', async () => {
    const d = await start();
    const c = await client(d);
    const x = await c.publish('x', 'one');
    const y = await c.publish('y', 'two');
    const z = await c.delete('z');
    const sub = subscribe(d, ['--since', 'all', '--json']);
    const replayed = (await sub.waitLines(3)).map((l) => JSON.parse(l));
    expect(replayed).toEqual([
      { id: 'x', ts: x.ts.toString(), time: iso(x.ts), value: 'one', deleted: false, transient: false, replayed: true },
      { id: 'y', ts: y.ts.toString(), time: iso(y.ts), value: 'two', deleted: false, transient: false, replayed: true },
      { id: 'z', ts: z.ts.toString(), time: iso(z.ts), deleted: true, transient: false, replayed: true },
    ]);
    const live = await c.publish('x', 'three');
    c.emit('t', 'transient');
    const more = (await sub.waitLines(5)).slice(3).map((l) => JSON.parse(l));
    expect(more).toEqual([
      {
        id: 'x',
        ts: live.ts.toString(),
        time: iso(live.ts),
        value: 'three',
        deleted: false,
        transient: false,
        replayed: false,
      },
      {
        id: 't',
        ts: expect.any(String),
        time: expect.any(String),
        value: 'transient',
        deleted: false,
        transient: true,
        replayed: false,
      },
    ]);
    expect(await sub.interrupt()).toBe(0);
  });

  it('cli - sub --since now prints only the messages published after it connected', async () => {
    const d = await start();
    const c = await client(d);
    await c.publish('early', 'before');
    const sub = subscribe(d, ['--since', 'now']);
    // The sub prints nothing until it is connected: publish until its first line shows up.
    const published: bigint[] = [];
    for (let i = 0; i < 100_000 && sub.lines.length === 0; i++) {
      published.push((await c.publish('later', `v${i}`)).ts);
      await c.fetch('later'); // a round trip, so the sub's output can come in between
    }
    const [first] = await sub.waitLines(1);
    const m = /^(\S+) later "v(\d+)"$/.exec(first as string);
    expect(m, first).not.toBeNull();
    const from = Number(m?.[2]);
    expect(m?.[1]).toBe(iso(published[from] as bigint));
    // Every publish from the first one it printed on reaches it, in order; nothing before.
    const last = await c.publish('later', 'last');
    const want = [
      ...published.slice(from).map((ts, i) => `${iso(ts)} later "v${from + i}"`),
      `${iso(last.ts)} later "last"`,
    ];
    expect(await sub.waitLines(want.length)).toEqual(want);
    expect(sub.lines.some((l) => l.includes('early'))).toBe(false);
    expect(await sub.interrupt()).toBe(0);
  });
});

describe('cli - output for scripts', () => {
  it('cli - sub --json --count prints any id and value as one parsable line each, and exits 0 by itself', async () => {
    const d = await start();
    const c = await client(d);
    const spaced = await c.publish('a b', 'line one\nline two');
    const quoted = await c.publish('say "hi"\tnow', '(deleted)');
    const run = await gossip(['sub', '--since', 'all', '--json', '--count', '2'], { d });
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      {
        id: 'a b',
        ts: spaced.ts.toString(),
        time: iso(spaced.ts),
        value: 'line one\nline two',
        deleted: false,
        transient: false,
        replayed: true,
      },
      {
        id: 'say "hi"\tnow',
        ts: quoted.ts.toString(),
        time: iso(quoted.ts),
        value: '(deleted)',
        deleted: false,
        transient: false,
        replayed: true,
      },
    ]);
  });

  it('cli - the human form never confuses a value with a tombstone, and quotes an id with spaces', async () => {
    const d = await start();
    const c = await client(d);
    const v = await c.publish('a b', '(deleted)');
    const t = await c.delete('gone');
    expect((await gossip(['pub', 'bin'], { d, input: Buffer.from([0xff, 0x00, 0x0a]) })).code).toBe(0);
    const run = await gossip(['sub', '--since', 'all', '--count', '3'], { d });
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines.slice(0, 2)).toEqual([`${iso(v.ts)} "a b" "(deleted)"`, `${iso(t.ts)} gone (deleted)`]);
    expect(lines[2]).toMatch(/^\S+Z bin base64:\/wAK$/);
    expect(lines[3]).toBe('');
  });

  it('cli - --raw writes the values alone: fetch gives back the bytes pub read from stdin, as they were', async () => {
    const d = await start();
    const bytes = Buffer.from([0x00, 0xff, 0x0a, 0x41, 0x0a]);
    expect((await gossip(['pub', 'k'], { d, input: bytes })).code).toBe(0);
    const child = spawnCli(['fetch', '--raw', 'k'], { GOSSIP_ADDRESS: `127.0.0.1:${d.port}` });
    child.stdin?.end();
    const chunks: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => chunks.push(b));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(0);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    // several: each value then a newline; a tombstone prints nothing (sub) or goes to stderr (fetch)
    const c = await client(d);
    await c.publish('x', 'one');
    await c.delete('y');
    const several = await gossip(['fetch', '--raw', 'x', 'y'], { d });
    expect(several).toMatchObject({ code: 4, stdout: 'one\n', stderr: 'y: deleted\n' });
    await c.publish('z', 'two');
    const sub = await gossip(['sub', 'x', 'y', 'z', '--since', 'all', '--raw', '--count', '2'], { d });
    expect(sub).toMatchObject({ code: 0, stdout: 'one\ntwo\n' });
  });

  it('cli - sub --timeout ends it: exit 0 alone, 5 when --count was not reached', async () => {
    const d = await start();
    const quiet = await gossip(['sub', '--since', 'now', '--timeout', '300ms'], { d });
    expect(quiet).toMatchObject({ code: 0, stdout: '' });
    const short = await gossip(['sub', '--since', 'now', '--count', '1', '--timeout', '300ms'], { d });
    expect(short.code).toBe(5);
    expect(short.stderr).toContain('0 of 1 messages');
  });

  it('cli - a usage error exits 2 and prints the usage line of its command', async () => {
    for (const [args, usage] of [
      [['fetch'], 'Usage: gossip fetch <id>'],
      [['fetch', 'k', '--json', '--raw'], 'Usage: gossip fetch <id>'],
      [['sub', '--count', '0'], 'Usage: gossip sub [prefix...]'],
      [['sub', '--timeout', 'soon'], 'Usage: gossip sub [prefix...]'],
      [['pub'], 'Usage: gossip pub <id>'],
      [['frobnicate'], 'Usage: gossip <command>'],
    ] as const) {
      const run = await gossip([...args]);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toContain(usage);
    }
  });
});

describe('cli - data folders', () => {
  async function stoppedFolder(publish: (c: GossipClient<string>) => Promise<void>): Promise<string> {
    const d = await start(['--compact-threshold', '0']);
    const c = await client(d);
    await publish(c);
    await c.close();
    expect((await d.stop()).code).toBe(0);
    return d.dataDir;
  }

  it('cli - inspect lists the segments of a stopped server folder and verifies every checksum, also as --json', async () => {
    const dir = await stoppedFolder(async (c) => {
      for (let i = 0; i < 10; i++) await c.publish(`id${i}`, `value ${i}`);
      await c.delete('id0');
    });
    const text = await gossip(['inspect', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('every checksum verified');
    expect(text.stdout).toMatch(/\.seg|segment/);
    expect(text.stdout).toContain('9 live ids, 1 tombstones');
    const { run, report } = await inspectJson(dir);
    expect(run.code).toBe(0);
    expect(report).toMatchObject({ records: 11, ids: 9, tombstones: 1, corruptions: 0, verified: true });
    expect(report.segments).toBeGreaterThanOrEqual(1);
    expect(report.segmentFiles).toHaveLength(report.segments);
    for (const name of report.segmentFiles.map((s) => s.name)) expect(text.stdout).toContain(name);
  });

  it('cli - inspect exits 1 on a meta file that cannot be read, as the next open refuses the folder', async () => {
    const dir = await stoppedFolder(async (c) => {
      await c.publish('k', 'v');
    });
    await writeFile(join(dir, 'gossip.meta'), '{ not json');
    const text = await gossip(['inspect', dir]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('CORRUPT meta file');
    const { report } = await inspectJson(dir);
    expect(report.verified).toBe(false);
    expect(report.metaError).toContain('gossip.meta');
  });

  it('cli - inspect lists the leftovers of an interrupted compaction and does not read them', async () => {
    const dir = await stoppedFolder(async (c) => {
      for (let i = 0; i < 10; i++) await c.publish(`id${i}`, `value ${i}`);
    });
    const { report } = await inspectJson(dir);
    const [seg] = report.segmentFiles;
    // A compaction output of a higher generation covering the same range replaces it; a
    // copy under that name leaves the original a leftover.
    const name = seg?.name as string;
    const output = name.replace(
      /-(\d+)\.seg$/,
      (_m, gen: string) => `-${String(Number(gen) + 1).padStart(gen.length, '0')}.seg`,
    );
    await copyFile(join(dir, name), join(dir, output));
    const after = await inspectJson(dir);
    expect(after.run.code).toBe(0);
    expect(after.report.segmentFiles.map((f) => f.name)).toEqual([output]);
    expect(after.report.leftovers).toEqual([name]);
  });

  it('cli - inspect exits 1 and reports CORRUPT after a byte in the middle of a segment flips', async () => {
    const dir = await stoppedFolder(async (c) => {
      for (let i = 0; i < 200; i++) await c.publish(`id${i}`, `value ${i} ${'x'.repeat(100)}`);
    });
    const before = await inspectJson(dir);
    expect(before.report.verified).toBe(true);
    const seg = before.report.segmentFiles.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const path = join(dir, seg.name);
    const size = (await stat(path)).size;
    const file = await open(path, 'r+');
    try {
      const at = Math.floor(size / 2);
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, at);
      byte[0] = (byte[0] as number) ^ 0xff;
      await file.write(byte, 0, 1, at);
    } finally {
      await file.close();
    }
    const text = await gossip(['inspect', dir]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('CORRUPT');
    expect(text.stdout).not.toContain('every checksum verified');
    const after = await inspectJson(dir);
    expect(after.run.code).toBe(1);
    expect(after.report.verified).toBe(false);
    expect(after.report.corruptions).toBeGreaterThanOrEqual(1);
  });

  it('cli - compact on a stopped server folder exits 0, lowers the dead ratio and keeps the data', async () => {
    const dir = await stoppedFolder(async (c) => {
      for (let round = 0; round < 10; round++)
        for (let i = 0; i < 20; i++) await c.publish(`id${i}`, `round ${round} ${'y'.repeat(50)}`);
    });
    const before = await inspectJson(dir);
    expect(before.report.deadRatio).toBeGreaterThan(0.5);
    const run = await gossip(['compact', dir]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^compacted /);
    const after = await inspectJson(dir);
    expect(after.run.code).toBe(0);
    expect(after.report.deadRatio).toBeLessThan(before.report.deadRatio);
    expect(after.report.ids).toBe(20);
    // The folder still serves the newest values.
    const d = await start([], dir);
    expect(await gossip(['fetch', 'id0', 'id19'], { d })).toMatchObject({ code: 0 });
    const values = (await gossip(['fetch', 'id7'], { d })).stdout;
    expect(values).toBe(`round 9 ${'y'.repeat(50)}\n`);
  });

  it('cli - compact while gossipd runs on the folder exits 1 with GOSSIP_ERR_STORE_LOCKED', async () => {
    const d = await start();
    const run = await gossip(['compact', d.dataDir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('GOSSIP_ERR_STORE_LOCKED');
  });
});

describe('cli - usage and failures', () => {
  it('cli - --help for the tool and for each command exits 0', async () => {
    const tool = await gossip(['--help']);
    expect(tool.code).toBe(0);
    expect(tool.stdout).toContain('Usage: gossip <command>');
    for (const command of ['pub', 'del', 'emit', 'sub', 'fetch', 'inspect', 'compact']) {
      const run = await gossip([command, '--help']);
      expect(run.code, command).toBe(0);
      expect(run.stdout, command).toContain('Usage: gossip');
      expect(run.stdout, command).toContain(command === 'del' ? 'gossip del' : `gossip ${command}`);
    }
    expect((await gossip(['help', 'fetch'])).stdout).toContain('Usage: gossip fetch');
  });

  it('cli - an unknown command, an unknown flag or a missing argument exits 2', async () => {
    const unknown = await gossip(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command');
    expect((await gossip([])).code).toBe(2);
    expect((await gossip(['pub', 'k', 'v', '--nope'])).code).toBe(2);
    expect((await gossip(['fetch'])).code).toBe(2);
    expect((await gossip(['inspect'])).code).toBe(2);
    expect((await gossip(['pub', 'k', 'v', '--ts', 'soon'])).code).toBe(2);
    expect((await gossip(['sub', '--since', 'yesterday'])).code).toBe(2);
    expect((await gossip(['sub', 'a/', 'a/'])).code).toBe(2);
  });

  it('cli - a connection to a closed port exits 1', async () => {
    const port = await closedPort();
    const env = { GOSSIP_ADDRESS: `127.0.0.1:${port}` };
    for (const args of [['pub', 'k', 'v'], ['fetch', 'k'], ['del', 'k'], ['emit', 'k', 'v'], ['sub']]) {
      const run = await gossip(args, { env });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr, args.join(' ')).toContain('GOSSIP_ERR_IO');
    }
  });

  it('cli - several comma-separated addresses are tried in turn: a dead first one is passed over', async () => {
    const d = await start();
    const dead = await closedPort();
    const env = { GOSSIP_ADDRESS: `127.0.0.1:${dead}, 127.0.0.1:${d.port}` };
    expect((await gossip(['pub', 'k', 'v'], { env })).code).toBe(0);
    expect(await gossip(['fetch', 'k'], { env })).toMatchObject({ code: 0, stdout: 'v\n' });
    const sub = await gossip([
      'sub',
      '--since',
      'all',
      '--count',
      '1',
      '--address',
      `127.0.0.1:${dead},127.0.0.1:${d.port}`,
    ]);
    expect(sub).toMatchObject({ code: 0, stdout: expect.stringMatching(/ k "v"\n$/) });
  });

  it('cli - a port that is not a gossip server says so and exits 1', async () => {
    const http = createHttpServer((_req, res) => res.end('ok'));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const { port } = http.address() as { port: number };
    try {
      for (const args of [['fetch', 'k'], ['sub']]) {
        const run = await gossip(args, { env: { GOSSIP_ADDRESS: `127.0.0.1:${port}` } });
        expect(run.code, args.join(' ')).toBe(1);
        expect(run.stderr, args.join(' ')).toContain(
          `GOSSIP_ERR_NOT_GOSSIP_SERVER: 127.0.0.1:${port} is not a gossip server`,
        );
      }
    } finally {
      http.closeAllConnections();
      http.close();
    }
  });
});

describe('cli prefixes - gossip sub <prefix>...', () => {
  it('cli prefixes - gossip sub flags/ presence/ prints only the ids under them, replayed and live, in the usual format', async () => {
    const d = await start();
    const pub = await client(d);
    const a = await pub.publish('flags/a', 'on');
    await pub.publish('jobs/1', 'queued');
    const p = await pub.publish('presence/x', 'here');
    const s = subscribe(d, ['flags/', 'presence/']);
    await s.waitFor('presence/x');
    expect(s.lines).toEqual([`${iso(a.ts)} flags/a "on"`, `${iso(p.ts)} presence/x "here"`]);
    await pub.publish('jobs/2', 'queued');
    const del = await pub.delete('flags/a');
    pub.emit('presence/y', 'typing');
    await s.waitFor('presence/y');
    expect(s.lines.slice(2)).toEqual([
      `${iso(del.ts)} flags/a (deleted)`,
      expect.stringMatching(/^\S+Z presence\/y "typing" \(transient\)$/),
    ]);
    expect(await s.interrupt()).toBe(0);
    expect(s.stderr).not.toContain('jobs/');
  });

  it('cli prefixes - gossip sub without a prefix still prints every id', async () => {
    const d = await start();
    const pub = await client(d);
    await pub.publish('flags/a', 'on');
    await pub.publish('jobs/1', 'queued');
    const s = subscribe(d, ['--since', 'all']);
    await s.waitFor('jobs/1');
    expect(s.lines.map((l) => l.split(' ')[1])).toEqual(['flags/a', 'jobs/1']);
    expect(await s.interrupt()).toBe(0);
  });

  it('cli prefixes - a prefix named twice exits 2; --help names the prefixes', async () => {
    const d = await start();
    const twice = subscribe(d, ['a/', 'a/']);
    const [code] = await twice.closed;
    expect(code).toBe(2);
    expect(twice.stderr).toContain('twice');
    const help = subscribe(d, ['--help']);
    expect((await help.closed)[0]).toBe(0);
    expect(help.lines[0]).toBe('Usage: gossip sub [prefix...] [--since all|now|10m|<ns>] [--json | --raw]');
  });
});
