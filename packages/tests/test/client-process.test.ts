import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GossipClient, utf8Codec } from '@gossip/client';
import { afterEach, describe, expect, it } from 'vitest';
import { iso } from '../src/iso.js';
import { type Relay, relay } from '../src/relay.js';
import { harness } from './harness.js';

// A client must keep its process alive while it connects, is connected or reconnects,
// and nothing of it may keep the process alive after close(). The vitest worker keeps
// its own event loop alive, so this can only be seen in a process of its own: these
// tests run a fixture whose only work is a GossipClient (and the built `gossip sub`)
// against a real gossipd that is SIGKILLed and restarted on the same port.

const FIXTURE = fileURLToPath(new URL('../fixtures/client-process.mjs', import.meta.url));
/** The built CLI: turbo builds it before these tests run. */
const CLI = fileURLToPath(new URL('../../../apps/cli/dist/main.js', import.meta.url));

const h = harness();
const children: ChildProcess[] = [];
const relays: Relay[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const r of relays.splice(0)) r.close();
});

/** The environment without any GOSSIP_* variable of the caller, plus `env`. */
function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GOSSIP_')));
  return { ...clean, ...env };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process read line by line: wait for the n-th line that matches, or fail if it exits first. */
function run(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: environment(env) });
  children.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    stdout.push(line);
    wake();
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    stderr.push(line);
    wake();
  });
  const exited: Promise<Exit> = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  let ended: Exit | undefined;
  void exited.then((e) => {
    ended = e;
    wake();
  });
  const wait = (lines: string[], match: (line: string) => boolean, n: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const hits = lines.filter(match);
        if (hits.length >= n) {
          waiters.delete(check);
          resolve(hits[n - 1] as string);
        } else if (ended) {
          waiters.delete(check);
          reject(
            new Error(
              `the process exited (${ended.code ?? ended.signal}) before the line waited for:\n${stdout.join('\n')}\n${stderr.join('\n')}`,
            ),
          );
        }
      };
      waiters.add(check);
      check();
    });
  return {
    child,
    stdout,
    stderr,
    exited,
    /** The n-th stdout line that matches. */
    line: (match: (line: string) => boolean, n = 1) => wait(stdout, match, n),
    /** The n-th stderr line that matches. */
    errLine: (match: (line: string) => boolean, n = 1) => wait(stderr, match, n),
  };
}

interface FixtureEvent {
  event: string;
  [field: string]: unknown;
}

/** The fixture (fixtures/client-process.mjs) on `address`, with `prefixes` if given: its JSON events. */
function fixture(address: string, mode: 'serve' | 'once' = 'serve', prefixes?: string[]) {
  const p = run([FIXTURE, mode], {
    GOSSIP_ADDRESS: address,
    ...(prefixes ? { CLIENT_PREFIXES: JSON.stringify(prefixes) } : {}),
  });
  const parse = (line: string): FixtureEvent => {
    try {
      return JSON.parse(line) as FixtureEvent;
    } catch {
      return { event: 'unparsed', line };
    }
  };
  return {
    ...p,
    events: () => p.stdout.map(parse),
    /** The n-th event that matches. */
    next: async (match: (e: FixtureEvent) => boolean, n = 1): Promise<FixtureEvent> =>
      parse(await p.line((l) => match(parse(l)), n)),
    /** Asks the fixture to call close(), as a line on its stdin. */
    close: () => p.child.stdin?.write('close\n'),
  };
}

/** Publishes with a client of the test's own, closed afterwards. */
async function publish(port: number, id: string, value: string): Promise<bigint> {
  const c = new GossipClient<string>({ address: `127.0.0.1:${port}`, codec: utf8Codec, since: 'now' });
  try {
    await c.connect();
    const r = await c.publish(id, value);
    expect(r.status).toBe('accepted');
    return r.ts;
  } finally {
    await c.close({ timeoutMs: 0 });
  }
}

const is =
  (event: string, extra: (e: FixtureEvent) => boolean = () => true) =>
  (e: FixtureEvent) =>
    e.event === event && extra(e);

describe('client process - lifetime', () => {
  it('client process - stays alive through a gossipd SIGKILL and restart on the same port, gets what is published after, exits 0 after close()', async () => {
    const d = await h.start();
    const port = d.port;
    const p = fixture(`127.0.0.1:${port}`);
    await p.next(is('synced'));
    await d.kill();
    await p.next(is('disconnect'));
    // Refused attempts: between them only the reconnect timer holds the process.
    await p.next(is('reconnecting', (e) => (e.attempt as number) >= 3));
    const again = await h.start({ dataDir: d.dataDir, args: ['--port', String(port)] });
    expect(again.port).toBe(port);
    await p.next(is('synced'), 2);
    const ts = await publish(port, 'after', 'restart');
    expect(await p.next(is('message', (e) => e.id === 'after'))).toEqual({
      event: 'message',
      id: 'after',
      ts: ts.toString(),
      value: 'restart',
      replayed: false,
    });
    expect(p.child.exitCode).toBeNull();
    p.close();
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.events().at(-1)).toEqual({ event: 'closed' });
  });

  it('client process - with prefixes it stays alive through a gossipd SIGKILL and restart, resumes its prefix and gets only what is published under it', async () => {
    const d = await h.start();
    const port = d.port;
    const p = fixture(`127.0.0.1:${port}`, 'serve', ['a/']);
    await p.next(is('synced', (e) => e.prefix === 'a/'));
    await d.kill();
    await p.next(is('disconnect'));
    // Refused attempts: between them only the reconnect timer holds the process.
    await p.next(is('reconnecting', (e) => (e.attempt as number) >= 3));
    const again = await h.start({ dataDir: d.dataDir, args: ['--port', String(port)] });
    expect(again.port).toBe(port);
    // The reconnect hello names a/ again: its prefix-done (B2, B5).
    await p.next(
      is('synced', (e) => e.prefix === 'a/'),
      2,
    );
    // b/after goes out first on the same log: had it been sent, it would come before a/after.
    await publish(port, 'b/after', 'not for it');
    const ts = await publish(port, 'a/after', 'restart');
    expect(await p.next(is('message', (e) => e.id === 'a/after'))).toEqual({
      event: 'message',
      id: 'a/after',
      ts: ts.toString(),
      value: 'restart',
      replayed: false,
    });
    expect(p.events().filter((e) => e.event === 'message')).toEqual([expect.objectContaining({ id: 'a/after' })]);
    expect(p.child.exitCode).toBeNull();
    p.close();
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.events().at(-1)).toEqual({ event: 'closed' });
  });

  it('client process - a publish made while it is away is replayed to it after gossipd restarts, then live ones follow', async () => {
    const d = await h.start();
    const port = d.port;
    // The fixture reaches gossipd through a relay, so the test can keep it away until it has published.
    const r = await relay(port);
    relays.push(r);
    const p = fixture(`127.0.0.1:${r.port}`);
    await p.next(is('synced'));
    r.hold();
    await d.kill();
    await p.next(is('disconnect'));
    await p.next(is('reconnecting', (e) => (e.attempt as number) >= 2));
    await h.start({ dataDir: d.dataDir, args: ['--port', String(port)] });
    const during = await publish(port, 'during', 'away');
    r.release();
    expect(await p.next(is('message', (e) => e.id === 'during'))).toMatchObject({
      ts: during.toString(),
      value: 'away',
      replayed: true,
    });
    await p.next(is('synced'), 2);
    const after = await publish(port, 'after', 'back');
    expect(await p.next(is('message', (e) => e.id === 'after'))).toMatchObject({
      ts: after.toString(),
      value: 'back',
      replayed: false,
    });
    p.close();
    expect(await p.exited).toEqual({ code: 0, signal: null });
  });

  it('client process - close() while it reconnects ends the process at once with code 0: nothing of the client keeps it alive', async () => {
    const d = await h.start();
    const p = fixture(`127.0.0.1:${d.port}`);
    await p.next(is('synced'));
    await d.kill();
    await p.next(is('reconnecting'));
    const asked = Date.now();
    p.close();
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - asked).toBeLessThan(5_000);
    expect(p.events().at(-1)).toEqual({ event: 'closed' });
  });

  it('client process - a client that publishes, fetches and closes lets its process exit 0 at once', async () => {
    const d = await h.start();
    const p = fixture(`127.0.0.1:${d.port}`, 'once');
    await p.next(is('closed'));
    const closed = Date.now();
    expect(await p.exited).toEqual({ code: 0, signal: null });
    // The publish and fetch timeouts (30 s) must not hold it.
    expect(Date.now() - closed).toBeLessThan(5_000);
    expect(p.events().filter((e) => e.event === 'message')).toMatchObject([{ id: 'once', value: 'x' }]);
  });
});

describe('cli process - gossip sub', () => {
  it('cli process - gossip sub survives a gossipd SIGKILL and restart on the same port and prints a message published after it', async () => {
    const d = await h.start();
    const port = d.port;
    const before = await publish(port, 'before', 'restart');
    const sub = run([CLI, 'sub', '--since', 'all'], { GOSSIP_ADDRESS: `127.0.0.1:${port}` });
    sub.child.stdin?.end();
    // The replayed message shows it is connected.
    await sub.line((l) => l === `${iso(before)} before "restart"`);
    await d.kill();
    await sub.errLine((l) => l.startsWith('disconnected:'));
    await h.start({ dataDir: d.dataDir, args: ['--port', String(port)] });
    const after = await publish(port, 'after', 'restart');
    await sub.line((l) => l === `${iso(after)} after "restart"`);
    sub.child.kill('SIGINT');
    expect(await sub.exited).toEqual({ code: 0, signal: null });
  });

  it('cli process - gossip sub a/ b/ survives a gossipd SIGKILL and restart, resumes its prefixes and prints only ids under them', async () => {
    const d = await h.start();
    const port = d.port;
    const before = await publish(port, 'a/before', 'restart');
    await publish(port, 'c/before', 'not for it');
    const sub = run([CLI, 'sub', 'a/', 'b/'], { GOSSIP_ADDRESS: `127.0.0.1:${port}` });
    sub.child.stdin?.end();
    await sub.line((l) => l === `${iso(before)} a/before "restart"`);
    await d.kill();
    await sub.errLine((l) => l.startsWith('disconnected:'));
    await h.start({ dataDir: d.dataDir, args: ['--port', String(port)] });
    await publish(port, 'c/after', 'not for it');
    const after = await publish(port, 'b/after', 'restart');
    await sub.line((l) => l === `${iso(after)} b/after "restart"`);
    expect(sub.stdout.filter((l) => l.includes(' c/'))).toEqual([]);
    sub.child.kill('SIGINT');
    expect(await sub.exited).toEqual({ code: 0, signal: null });
  });
});
