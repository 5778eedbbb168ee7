import { type ClientMessage, type ClientOptions, GossipClient, GossipState, utf8Codec } from '@gossip/client';
import type { PrefixSpec } from '@gossip/protocol';
import type { Gossipd } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { harness } from './harness.js';

// End to end: @gossip/client with prefixes against the real gossipd (docs/PROTOCOL.md,
// "Subscriptions by prefix"). The wire itself is held to the page by prefixes.test.ts.

const h = harness();

function start(args: string[] = [], dataDir?: string): Promise<Gossipd> {
  return h.start({ args, ...(dataDir ? { dataDir } : {}) });
}

function client(port: number, options: ClientOptions<string> = {}): GossipClient<string> {
  const c = new GossipClient<string>({
    address: `127.0.0.1:${port}`,
    codec: utf8Codec,
    reconnect: () => 5,
    ...options,
  });
  h.keep(c);
  return c;
}

/** A publisher that receives nothing. */
async function publisher(port: number): Promise<GossipClient<string>> {
  const p = client(port, { prefixes: [], echo: false });
  await p.connect();
  return p;
}

/** The messages `c` receives, and a way to wait until one of them is there. */
function recorder(c: GossipClient<string>) {
  const seen: ClientMessage<string>[] = [];
  const waiters = new Set<() => void>();
  c.on('message', (m) => {
    seen.push(m);
    for (const w of waiters) w();
  });
  return {
    ids: () => seen.map((m) => m.id),
    /** The values of `id` received, in order (each prefix's replay sends its own copy). */
    values: (id: string) => seen.filter((m) => m.id === id).map((m) => m.value),
    /** Resolves once `id` was received. */
    async saw(id: string): Promise<void> {
      while (!seen.some((m) => m.id === id)) {
        await new Promise<void>((resolve) => {
          const w = () => {
            waiters.delete(w);
            resolve();
          };
          waiters.add(w);
        });
      }
    },
  };
}

describe('client prefixes - against gossipd', () => {
  it('client prefixes - only the ids under the prefixes arrive, live ones once where prefixes overlap; subscribe replays a new prefix, unsubscribe stops one', async () => {
    const d = await start();
    const pub = await publisher(d.port);
    for (const id of ['flags/a', 'flags/b', 'presence/x', 'jobs/1']) await pub.publish(id, id);

    const c = client(d.port, { prefixes: ['flags/', 'flags/a'] });
    const all = new GossipState(c);
    const got = recorder(c);
    await c.connect();
    expect(all.toMap()).toEqual(
      new Map([
        ['flags/a', 'flags/a'],
        ['flags/b', 'flags/b'],
      ]),
    );
    expect(c.prefixes?.map((p) => [p.prefix, p.replayed, p.lastTs !== null])).toEqual([
      ['flags/', true, true],
      ['flags/a', true, true],
    ]);

    await pub.publish('flags/a', 'live');
    await pub.publish('presence/y', 'y');
    pub.emit('jobs/e', 'not for c');
    await pub.publish('flags/marker', 'm');
    await got.saw('flags/marker');
    // Under both flags/ and flags/a, the live message comes once (B1).
    expect(got.values('flags/a')).toEqual(['flags/a', 'flags/a', 'live']);
    expect(got.ids().filter((id) => !id.startsWith('flags/'))).toEqual([]);

    await c.subscribe('presence/');
    expect(all.get('presence/x')).toBe('presence/x');
    expect(all.get('presence/y')).toBe('y');

    await c.unsubscribe('flags/');
    await pub.publish('flags/b', 'after unsubscribe');
    await pub.publish('flags/a', 'still under flags/a');
    await pub.publish('presence/z', 'z');
    await got.saw('presence/z');
    expect(all.get('flags/b')).toBe('flags/b');
    expect(all.get('flags/a')).toBe('still under flags/a');
  });

  it('client prefixes - across a restart each prefix resumes from its own last ts, and nothing published meanwhile under it is missed', async () => {
    const d = await start();
    const port = d.port;
    const c = client(port, { prefixes: ['a/', 'b/'] });
    const got = recorder(c);
    await c.connect();
    const pub = await publisher(port);
    await pub.publish('a/1', '1');
    await pub.publish('b/1', '1');
    await got.saw('b/1');
    const before = Object.fromEntries((c.prefixes ?? []).map((p) => [p.prefix, p.lastTs as bigint]));
    expect(before['a/']).toBeLessThan(before['b/'] as bigint);
    await pub.close();

    // Away: gossipd stops; on another port, under the same folder, a/2, b/2 and c/2 are published.
    const down = new Promise((r) => c.once('disconnect', r));
    await d.stop();
    await down;
    const side = await start([], d.dataDir);
    const pub2 = await publisher(side.port);
    for (const id of ['a/2', 'b/2', 'c/2']) await pub2.publish(id, '2');
    await pub2.close();
    await side.stop();

    const reconnected = new Promise<{ prefixes?: PrefixSpec[] }>((r) => c.once('connect', r));
    await start(['--port', String(port)], d.dataDir);
    const { prefixes } = await reconnected;
    const fiveSeconds = 5_000_000_000n;
    expect(prefixes).toEqual([
      { prefix: 'a/', since: (before['a/'] as bigint) - fiveSeconds },
      { prefix: 'b/', since: (before['b/'] as bigint) - fiveSeconds },
    ]);
    await got.saw('a/2');
    await got.saw('b/2');
    await new Promise((r) => (c.state === 'ready' ? r(undefined) : c.once('synced', r)));
    expect(got.ids()).not.toContain('c/2');
  });

  it('client prefixes - a view made late with a prefix catches up on that prefix alone', async () => {
    const d = await start();
    const c = client(d.port);
    await c.connect();
    const pub = await publisher(d.port);
    await pub.publish('flags/a', 'on');
    await pub.publish('presence/x', 'here');
    const flags = new GossipState(c, { prefix: 'flags/' });
    await new Promise<void>((r) => flags.once('synced', () => r()));
    expect(flags.toMap()).toEqual(new Map([['flags/a', 'on']]));
  });

  it('client prefixes - gossipd --max-prefixes: a hello past it fails connect(), a subscribe past it is refused with GOSSIP_ERR_TOO_MANY_PREFIXES', async () => {
    const d = await start(['--max-prefixes', '2']);
    await expect(client(d.port, { prefixes: ['a/', 'b/', 'c/'] }).connect()).rejects.toMatchObject({
      code: 'GOSSIP_ERR_TOO_MANY_PREFIXES',
    });
    const c = client(d.port, { prefixes: ['a/'] });
    await c.connect();
    await c.subscribe('b/');
    await expect(c.subscribe('c/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_TOO_MANY_PREFIXES' });
    await expect(c.subscribe('x'.repeat(257))).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIX_TOO_LONG' });
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['a/', 'b/']);
  });
});
