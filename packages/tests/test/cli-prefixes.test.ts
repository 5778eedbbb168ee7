import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { GossipClient, utf8Codec } from '@gossip/client';
import { Gossipd } from '@gossip/testing';
import { afterEach, describe, expect, it } from 'vitest';

// End to end: `gossip sub <prefix>...` (the built CLI) against the real gossipd.

/** The built CLI: turbo builds it before these tests run. */
const CLI = fileURLToPath(new URL('../../../apps/cli/dist/main.js', import.meta.url));

const servers: Gossipd[] = [];
const clients: GossipClient<string>[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close({ timeoutMs: 0 })));
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  const all = servers.splice(0);
  await Promise.all(all.map((d) => d.kill()));
  await Promise.all(all.map((d) => d.cleanup()));
});

async function start(): Promise<Gossipd> {
  const d = await Gossipd.start();
  servers.push(d);
  return d;
}

async function publisher(d: Gossipd): Promise<GossipClient<string>> {
  const c = new GossipClient<string>({ address: `127.0.0.1:${d.port}`, codec: utf8Codec, since: 'now' });
  clients.push(c);
  await c.connect();
  return c;
}

/** A running `gossip sub`: its stdout lines as they come, without any GOSSIP_* of the caller. */
function sub(d: Gossipd, args: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GOSSIP_')));
  const child = spawn(process.execPath, [CLI, 'sub', ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...env, GOSSIP_ADDRESS: `127.0.0.1:${d.port}` },
  });
  children.push(child);
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
  const closed = once(child, 'close') as Promise<[number | null]>;
  return {
    lines,
    get stderr() {
      return stderr;
    },
    closed,
    /** Resolves once a line ends with ` <id> <value>` (rejects if the process ends first). */
    async waitFor(id: string): Promise<void> {
      while (!lines.some((l) => l.split(' ')[1] === id)) {
        await Promise.race([
          new Promise<void>((resolve) => {
            waiter = resolve;
          }),
          closed.then(([code]) => {
            throw new Error(`gossip sub exited (${code}) after ${lines.length} lines: ${stderr}`);
          }),
        ]);
      }
    },
    async interrupt(): Promise<number | null> {
      child.kill('SIGINT');
      const [code] = await closed;
      return code;
    },
  };
}

describe('cli prefixes - gossip sub <prefix>...', () => {
  it('cli prefixes - gossip sub flags/ presence/ prints only the ids under them, replayed and live, in the usual format', async () => {
    const d = await start();
    const pub = await publisher(d);
    const a = await pub.publish('flags/a', 'on');
    await pub.publish('jobs/1', 'queued');
    const p = await pub.publish('presence/x', 'here');
    const s = sub(d, ['flags/', 'presence/']);
    await s.waitFor('presence/x');
    expect(s.lines).toEqual([`${a.ts} flags/a on`, `${p.ts} presence/x here`]);
    await pub.publish('jobs/2', 'queued');
    const del = await pub.delete('flags/a');
    pub.emit('presence/y', 'typing');
    await s.waitFor('presence/y');
    expect(s.lines.slice(2)).toEqual([
      `${del.ts} flags/a (deleted)`,
      expect.stringMatching(/^~\d+ presence\/y typing$/),
    ]);
    expect(await s.interrupt()).toBe(0);
    expect(s.stderr).not.toContain('jobs/');
  });

  it('cli prefixes - gossip sub without a prefix still prints every id', async () => {
    const d = await start();
    const pub = await publisher(d);
    await pub.publish('flags/a', 'on');
    await pub.publish('jobs/1', 'queued');
    const s = sub(d, ['--since', 'all']);
    await s.waitFor('jobs/1');
    expect(s.lines.map((l) => l.split(' ')[1])).toEqual(['flags/a', 'jobs/1']);
    expect(await s.interrupt()).toBe(0);
  });

  it('cli prefixes - a prefix named twice exits 2; --help names the prefixes', async () => {
    const d = await start();
    const twice = sub(d, ['a/', 'a/']);
    const [code] = await twice.closed;
    expect(code).toBe(2);
    expect(twice.stderr).toContain('twice');
    const help = sub(d, ['--help']);
    expect((await help.closed)[0]).toBe(0);
    expect(help.lines[0]).toBe('Usage: gossip sub [prefix...] [--since all|now|10m|<ns>] [--json] [--no-transient]');
  });
});
