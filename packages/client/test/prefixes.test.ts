import { once } from 'node:events';
import {
  AckStatus,
  Durability,
  FrameKind,
  MessageFlags,
  MIN_TS,
  ResyncReason,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from '@gossip/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type ClientOptions, GossipClient, GossipState, type PrefixInfo, utf8Codec } from '../src/index.js';
import { type FaultConn, FaultServer, latch } from './fault-server.js';

// Subscriptions by prefix (docs/PROTOCOL.md, B1–B7), against a scripted server.

let server: FaultServer;
const clients: GossipClient<string>[] = [];

beforeEach(async () => {
  server = await FaultServer.start();
  server.maxPrefixes = 64;
  server.maxPrefixBytes = 256;
});
afterEach(async () => {
  vi.useRealTimers();
  for (const c of clients.splice(0)) await c.close({ timeoutMs: 100 });
  await server.close();
});

function client(options: ClientOptions<string> = {}): GossipClient<string> {
  const c = new GossipClient<string>({ address: server.address, codec: utf8Codec, ...options });
  clients.push(c);
  return c;
}

const R = MessageFlags.Replayed;
const MS = 1_000_000n;

function byPrefix(c: GossipClient<string>): Record<string, Omit<PrefixInfo, 'prefix'>> {
  return Object.fromEntries((c.prefixes ?? []).map(({ prefix, ...rest }) => [prefix, rest]));
}

/** The frames of `kind` the client sent on `conn`. */
function sent<K extends FrameKind>(conn: FaultConn, kind: K) {
  return conn.frames.filter((f) => f.kind === kind);
}

describe('prefixes hello', () => {
  it('prefixes - the hello names each prefix with the since of its first replay, its own since unused (B2)', async () => {
    const c = client({ prefixes: ['flags/', 'presence/'] });
    const states: string[] = [];
    c.on('state', (s) => states.push(s));
    const connected = new Promise<unknown>((r) => c.once('connect', r));
    await c.connect();
    const conn = await server.connection(0);
    expect(conn.hello.prefixes).toEqual([
      { prefix: 'flags/', since: MIN_TS },
      { prefix: 'presence/', since: MIN_TS },
    ]);
    expect(conn.hello.since).toBeNull();
    expect(conn.hello.epoch).toBeNull();
    expect(await connected).toMatchObject({ since: null, prefixes: conn.hello.prefixes });
    // connect() resolves at the last prefix-done: ready once every replay it opened with is done.
    expect(states).toEqual(['connecting', 'replaying', 'ready']);
    expect(c.prefixes).toEqual([
      { prefix: 'flags/', lastTs: null, replayed: true },
      { prefix: 'presence/', lastTs: null, replayed: true },
    ]);
  });

  it('prefixes - since now and a ts go as nil and int64; a client without prefixes sends no prefixes key', async () => {
    await client({ prefixes: ['a/'], since: 'now' }).connect();
    await client({ prefixes: ['b/'], since: 42n }).connect();
    await client().connect();
    expect((await server.connection(0)).hello.prefixes).toEqual([{ prefix: 'a/', since: null }]);
    expect((await server.connection(1)).hello.prefixes).toEqual([{ prefix: 'b/', since: 42n }]);
    const plain = await server.connection(2);
    expect(plain.hello.prefixes).toBeUndefined();
    expect(plain.hello.since).toBe(MIN_TS);
    // The whole hello of a client without prefixes: since -2^63, no epoch, name and token absent: {} (H1).
    expect(Buffer.concat(plain.chunks).subarray(0, 36).toString('hex')).toBe(
      '000000200189475350010180000000000000000000000000000000000000000000000080',
    );
  });

  it('prefixes - a reconnect hello is the golden bytes of B2: the epoch, flags/ from its lastTs − 5 s, presence/ live only', async () => {
    server.epoch = '00112233445566778899aabbccddeeff';
    server.onHello = (conn) => {
      if (server.conns.length > 1) return server.welcomePrefixes(conn);
      // flags/ is done at 1700000005123456789; presence/ (live only) is cut before its prefix-done.
      server.welcomeThen(conn, (enc) => enc.prefixDone('flags/', 0, 1_700_000_005_123_456_789n, false));
    };
    const c = client({ prefixes: ['flags/'], since: 1_700_000_000_000_000_000n, reconnect: () => 0 });
    const presence = c.subscribe('presence/', { since: 'now' });
    const first = c.connect();
    const conn = await server.connection(0);
    expect(conn.hello.prefixes).toEqual([
      { prefix: 'flags/', since: 1_700_000_000_000_000_000n },
      { prefix: 'presence/', since: null },
    ]);
    await vi.waitFor(() => expect(byPrefix(c)['flags/']?.lastTs).toBe(1_700_000_005_123_456_789n));
    conn.socket.destroy();
    await Promise.all([first, presence]);
    const again = await server.connection(1);
    expect(Buffer.concat(again.chunks).subarray(0, 75).toString('hex')).toBe(
      '0000004701894753500102000000000000000000112233445566778899aabbccddeeff81a870726566697865739292a6666c6167732fd317979cfe3d85cd1592a970726573656e63652fc0',
    );
  });

  it('prefixes - prefixes that do not fit in one hello go as subscribes after the welcome, in order; connect waits for all', async () => {
    server.maxPrefixes = 100;
    const prefixes = Array.from({ length: 70 }, (_, n) => `${'p'.repeat(250)}${String(n).padStart(4, '0')}/`);
    const c = client({ prefixes, name: 'n'.repeat(1000) });
    await c.connect();
    const conn = await server.connection(0);
    const inHello = (conn.hello.prefixes ?? []).map((p) => p.prefix);
    const subscribes = sent(conn, FrameKind.Subscribe) as SubscribeFrame[];
    expect(inHello.length).toBeGreaterThan(40);
    expect(inHello.length).toBeLessThan(70);
    expect([...inHello, ...subscribes.map((f) => f.prefix)]).toEqual(prefixes);
    expect(subscribes.every((f) => f.since === MIN_TS && f.epoch === null)).toBe(true);
    expect(c.prefixes?.every((p) => p.replayed)).toBe(true);
  });

  it('prefixes - the constructor refuses prefixes that are not strings, too long for the wire, or named twice', () => {
    const bad: unknown[] = [['a/', 'a/'], [5], 'flags/', ['x'.repeat(65_536)], ['\ud800']];
    for (const prefixes of bad) {
      expect(() => new GossipClient({ address: server.address, prefixes: prefixes as string[] })).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
      );
    }
    expect(() => new GossipClient({ address: server.address, prefixes: ['', 'a/', 'x'.repeat(65_535)] })).not.toThrow();
  });
});

describe('prefixes on a server without them', () => {
  it('prefixes - a welcome without maxPrefixes fails connect() and subscribe() with GOSSIP_ERR_PREFIXES_UNSUPPORTED; nothing after it is read', async () => {
    server.maxPrefixes = undefined;
    // An old server ignores the key and sends everything after a plain replay-done.
    server.onHello = (conn) => {
      server.welcome(conn, true);
      conn.send(
        conn.enc.message(0, 'other/x', 5n, Buffer.from('v')).message(0, 'flags/a', 6n, Buffer.from('v')).take(),
      );
    };
    const c = client({ prefixes: ['flags/'] });
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    const subscribed = expect(c.subscribe('presence/')).rejects.toMatchObject({
      code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED',
    });
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED' });
    await subscribed;
    expect(c.state).toBe('closed');
    expect(seen).toEqual([]);
    // A client without prefixes is served by the same server as before.
    await client().connect();
  });

  it('prefixes - a reconnect to a server without them is an error event and another attempt; a subscribe waiting fails, the option prefixes stay', async () => {
    const c = client({ prefixes: ['flags/'], reconnect: () => 5 });
    await c.connect();
    server.maxPrefixes = undefined;
    const errors: string[] = [];
    c.on('error', (e) => errors.push(e.code));
    let subscribed: Promise<void> | undefined;
    c.once('reconnecting', () => {
      subscribed = c.subscribe('jobs/');
      subscribed.catch(() => undefined);
    });
    server.dropAll();
    await vi.waitFor(() => expect(errors.length).toBeGreaterThanOrEqual(2));
    expect(new Set(errors)).toEqual(new Set(['GOSSIP_ERR_PREFIXES_UNSUPPORTED']));
    await expect(subscribed).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED' });
    expect(c.state).toBe('reconnecting');
    server.maxPrefixes = 64;
    await vi.waitFor(() => expect(c.state).toBe('ready'));
    expect(server.conns.at(-1)?.hello.prefixes?.map((p) => p.prefix)).toEqual(['flags/']);
  });
});

describe('subscribe and unsubscribe', () => {
  it('prefixes - subscribe sends a subscribe frame and resolves at its prefix-done, not at its ack (B3, B5)', async () => {
    let conn: FaultConn | undefined;
    let frame: SubscribeFrame | undefined;
    server.onFrame = (cn, f) => {
      if (f.kind !== FrameKind.Subscribe) return;
      conn = cn;
      frame = f;
      cn.send(
        cn.enc.ack(f.reqId, AckStatus.Accepted, Durability.None).message(R, 'jobs/1', 7n, Buffer.from('j')).take(),
      );
    };
    const c = client({ prefixes: ['flags/'] });
    await c.connect();
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    const synced: unknown[] = [];
    c.on('synced', (info) => synced.push(info));
    let done = false;
    const subscribed = c.subscribe('jobs/').then(() => {
      done = true;
    });
    await vi.waitFor(() => expect(seen).toEqual(['jobs/1']));
    expect(frame).toMatchObject({ prefix: 'jobs/', since: MIN_TS, epoch: null });
    expect(frame?.reqId).toBeGreaterThan(0);
    expect(done).toBe(false);
    expect(byPrefix(c)['jobs/']).toEqual({ lastTs: 7n, replayed: false });
    conn?.send(conn.enc.prefixDone('jobs/', 1, 9n, false).take());
    await subscribed;
    expect(synced).toEqual([{ count: 1, snapshot: false, newestTs: 9n, prefix: 'jobs/' }]);
    expect(byPrefix(c)['jobs/']).toEqual({ lastTs: 9n, replayed: true });
    expect(c.state).toBe('ready');
  });

  it('prefixes - an error ack rejects subscribe with its code and the prefix is not held', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Subscribe) return;
      conn.send(
        conn.enc
          .ack(f.reqId, AckStatus.Error, Durability.None, 'GOSSIP_ERR_TOO_MANY_PREFIXES', 'at most 1 prefix')
          .take(),
      );
    };
    const c = client({ prefixes: ['flags/'] });
    await c.connect();
    await expect(c.subscribe('jobs/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_TOO_MANY_PREFIXES' });
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['flags/']);
    expect(c.covers('jobs/x')).toBe(false);
  });

  it('prefixes - subscribe checks the prefix, since and the welcome limits before sending anything', async () => {
    server.maxPrefixes = 2;
    server.maxPrefixBytes = 8;
    const c = client({ prefixes: ['a/'] });
    await c.connect();
    await expect(c.subscribe('x'.repeat(9))).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIX_TOO_LONG' });
    await expect(c.subscribe('\udc00')).rejects.toMatchObject({ code: 'GOSSIP_ERR_ID_NOT_UTF8' });
    await expect(c.subscribe(5 as unknown as string)).rejects.toMatchObject({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' });
    await expect(c.subscribe('b/', { since: 2n ** 63n })).rejects.toMatchObject({
      code: 'GOSSIP_ERR_INVALID_ARGUMENT',
    });
    await expect(c.subscribe('b/', { since: 'later' as 'now' })).rejects.toMatchObject({
      code: 'GOSSIP_ERR_INVALID_ARGUMENT',
    });
    await c.subscribe('b/');
    await expect(c.subscribe('c/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_TOO_MANY_PREFIXES' });
    // A prefix held: resolves at once without a since; with one, unsubscribe first (B3).
    await c.subscribe('b/');
    await expect(c.subscribe('b/', { since: 'all' })).rejects.toMatchObject({ code: 'GOSSIP_ERR_ALREADY_SUBSCRIBED' });
    expect(sent(await server.connection(0), FrameKind.Subscribe).map((f) => (f as SubscribeFrame).prefix)).toEqual([
      'b/',
    ]);
  });

  it('prefixes - unsubscribe resolves at its ack; what comes under the prefix alone before the ack is not delivered (B4)', async () => {
    const { gate, release } = latch();
    let frame: UnsubscribeFrame | undefined;
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Unsubscribe) return;
      frame = f;
      // Queued before the server took the unsubscribe: b/1 is dropped by the client, a/1 and ab/1 kept.
      conn.send(
        conn.enc
          .message(0, 'b/1', 10n, Buffer.from('x'))
          .message(0, 'a/1', 11n, Buffer.from('y'))
          .message(0, 'b/a/1', 12n, Buffer.from('z'))
          .take(),
      );
      void gate.then(() => conn.send(conn.enc.ack(f.reqId, AckStatus.Accepted, Durability.None).take()));
    };
    const c = client({ prefixes: ['a/', 'b/', 'b/a/'] });
    await c.connect();
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    let done = false;
    const unsubscribed = c.unsubscribe('b/').then(() => {
      done = true;
    });
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['a/', 'b/a/']);
    await vi.waitFor(() => expect(seen).toEqual(['a/1', 'b/a/1']));
    expect(frame?.prefix).toBe('b/');
    expect(done).toBe(false);
    release();
    await unsubscribed;
    await expect(c.unsubscribe('b/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_NOT_SUBSCRIBED' });
  });

  it('prefixes - unsubscribe before the replay is done fails the waiting subscribe with GOSSIP_ERR_ABORTED; NOT_SUBSCRIBED from the server resolves it', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Subscribe) conn.send(conn.enc.ack(f.reqId, 0, 0).take()); // and never a prefix-done
      if (f.kind === FrameKind.Unsubscribe)
        conn.send(conn.enc.ack(f.reqId, AckStatus.Error, Durability.None, 'GOSSIP_ERR_NOT_SUBSCRIBED', 'no').take());
    };
    const c = client({ prefixes: [] });
    await c.connect();
    const subscribed = expect(c.subscribe('jobs/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });
    const again = expect(c.subscribe('jobs/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });
    await c.unsubscribe('jobs/');
    await subscribed;
    await again;
    expect(c.prefixes).toEqual([]);
  });

  it('prefixes - subscribe and unsubscribe before connect() change the first hello; nothing goes as a frame', async () => {
    const c = client({ prefixes: ['a/', 'b/'] });
    const subscribed = c.subscribe('c/', { since: 5n });
    await c.unsubscribe('a/');
    await c.connect();
    await subscribed;
    const conn = await server.connection(0);
    expect(conn.hello.prefixes).toEqual([
      { prefix: 'b/', since: MIN_TS },
      { prefix: 'c/', since: 5n },
    ]);
    expect(conn.frames.map((f) => f.kind)).toEqual([FrameKind.Hello]);
  });

  it('prefixes - a subscribe while reconnecting joins the next hello; one after the hello went out is sent after the welcome', async () => {
    const c = client({ prefixes: ['a/'], reconnect: () => 10 });
    await c.connect();
    const { gate, release } = latch();
    server.onHello = (conn) => void gate.then(() => server.welcomePrefixes(conn));
    let inHello: Promise<void> | undefined;
    c.once('reconnecting', () => {
      inHello = c.subscribe('b/');
    });
    server.dropAll();
    const conn = await server.connection(1);
    expect(conn.hello.prefixes?.map((p) => p.prefix)).toEqual(['a/', 'b/']);
    // The hello is out, the welcome not yet read: the next one goes after it.
    const afterWelcome = c.subscribe('c/');
    const unsubscribed = c.unsubscribe('a/');
    release();
    await Promise.all([inHello, afterWelcome, unsubscribed]);
    expect(conn.frames.map((f) => [f.kind, 'prefix' in f ? f.prefix : undefined])).toEqual([
      [FrameKind.Hello, undefined],
      [FrameKind.Unsubscribe, 'a/'],
      [FrameKind.Subscribe, 'c/'],
    ]);
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['b/', 'c/']);
  });

  it('prefixes - close() fails the subscribes waiting with GOSSIP_ERR_CLIENT_CLOSED', async () => {
    server.onFrame = () => undefined;
    const c = client({ prefixes: [] });
    await c.connect();
    const subscribed = expect(c.subscribe('a/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
    await c.close();
    await subscribed;
    await expect(c.subscribe('b/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
  });
});

describe('prefix lastTs', () => {
  it('prefixes - each prefix keeps its own lastTs by B5, and a reconnect names each with its own since, a replay cut short included', async () => {
    server.onHello = (conn) => {
      if (server.conns.length > 1) return server.welcomePrefixes(conn);
      server.welcomeThen(conn, (enc) =>
        enc
          // a/'s replay. a/x/1 is under a/x/ too, whose replay waits its turn: it says nothing of a/x/.
          .message(R, 'a/1', 20n * MS, Buffer.from('1'))
          .message(R, 'a/x/1', 30n * MS, Buffer.from('1'))
          .prefixDone('a/', 2, 40n * MS, false)
          // Live and let through by a/, which is done: it raises a/ only.
          .message(0, 'a/x/2', 50n * MS, Buffer.from('2'))
          // A transient message raises nothing.
          .message(MessageFlags.Transient, 'a/t', 90n * MS, Buffer.from('t'))
          // a/x/'s replay, cut by the close before its prefix-done; b/ never began.
          .message(R, 'a/x/0', 10n * MS, Buffer.from('0')),
      );
    };
    const c = client({ prefixes: ['a/', 'a/x/', 'b/'], replayDeltaMs: 1, reconnect: () => 0 });
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    const connecting = c.connect();
    await vi.waitFor(() => expect(seen).toEqual(['a/1', 'a/x/1', 'a/x/2', 'a/t', 'a/x/0']));
    expect(byPrefix(c)).toEqual({
      'a/': { lastTs: 50n * MS, replayed: true },
      'a/x/': { lastTs: 10n * MS, replayed: false },
      'b/': { lastTs: null, replayed: false },
    });
    expect(c.lastTs).toBe(50n * MS);
    expect(c.state).toBe('replaying');
    (await server.connection(0)).socket.destroy();
    await connecting;
    const again = await server.connection(1);
    expect(again.hello.epoch).toBe(server.epoch);
    expect(again.hello.prefixes).toEqual([
      { prefix: 'a/', since: 49n * MS },
      { prefix: 'a/x/', since: 9n * MS },
      { prefix: 'b/', since: MIN_TS },
    ]);
  });

  it('prefixes - a pong raises only the prefixes whose prefix-done was read (K2, B5)', async () => {
    server.onHello = (conn) => {
      server.welcomeThen(conn, (enc) => enc.prefixDone('a/', 0, 5n, false));
    };
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Ping) conn.send(conn.enc.pong(f.nonce, 9n).take());
    };
    const c = client({ prefixes: ['a/', 'b/'], pingIntervalMs: 10 });
    void c.connect().catch(() => undefined);
    await vi.waitFor(() => expect(byPrefix(c)['a/']?.lastTs).toBe(9n));
    expect(byPrefix(c)['b/']?.lastTs).toBeNull();
  });

  it('prefixes - a prefix-resync resets only its prefix; a new epoch resets them all (B6, H4)', async () => {
    server.onHello = (conn) => {
      server.welcome(conn, false);
      const n = server.conns.length;
      if (n === 1) {
        conn.enc
          .message(R, 'a/1', 10n * MS, Buffer.from('1'))
          .prefixDone('a/', 1, 10n * MS, false)
          .message(R, 'b/1', 20n * MS, Buffer.from('1'))
          .prefixDone('b/', 1, 20n * MS, false);
      } else if (n === 2) {
        conn.enc
          .prefixResync('a/', ResyncReason.Horizon, 15n * MS)
          .message(R, 'a/2', 3n * MS, Buffer.from('2'))
          .prefixDone('a/', 1, 30n * MS, true)
          .prefixDone('b/', 0, 30n * MS, false);
      } else {
        for (const { prefix } of conn.hello.prefixes ?? []) conn.enc.prefixDone(prefix, 0, MIN_TS, false);
      }
      conn.send(conn.enc.take());
    };
    const c = client({ prefixes: ['a/', 'b/'], replayDeltaMs: 0, reconnect: () => 0 });
    await c.connect();
    expect(byPrefix(c)).toMatchObject({ 'a/': { lastTs: 10n * MS }, 'b/': { lastTs: 20n * MS } });
    const resyncs: [unknown, Record<string, unknown>][] = [];
    c.on('resync', (info) => resyncs.push([info, byPrefix(c)]));
    const synced: unknown[] = [];
    c.on('synced', (info) => synced.push(info));
    server.dropAll();
    await vi.waitFor(() => expect(synced.length).toBe(2));
    expect(resyncs).toEqual([
      [
        { reason: 'horizon', horizon: 15n * MS, prefix: 'a/' },
        { 'a/': { lastTs: null, replayed: false }, 'b/': { lastTs: 20n * MS, replayed: false } },
      ],
    ]);
    expect(synced[0]).toEqual({ count: 1, snapshot: true, newestTs: 30n * MS, prefix: 'a/' });
    expect(byPrefix(c)).toMatchObject({ 'a/': { lastTs: 30n * MS }, 'b/': { lastTs: 30n * MS } });
    expect((await server.connection(1)).hello.prefixes).toEqual([
      { prefix: 'a/', since: 10n * MS },
      { prefix: 'b/', since: 20n * MS },
    ]);
    // Another log: every prefix starts over, and the next hello replays each from -2^63 with the new epoch.
    server.epoch = 'cd'.repeat(16);
    const connected = new Promise((r) => c.once('connect', r));
    server.dropAll();
    await connected;
    expect(byPrefix(c)).toMatchObject({ 'a/': { lastTs: null }, 'b/': { lastTs: null } });
    await vi.waitFor(() => expect(c.state).toBe('ready'));
    server.dropAll();
    const fourth = await server.connection(3);
    expect(fourth.hello.epoch).toBe('cd'.repeat(16));
    expect(fourth.hello.prefixes).toEqual([
      { prefix: 'a/', since: MIN_TS },
      { prefix: 'b/', since: MIN_TS },
    ]);
  });

  it('prefixes - frames of a replay stopped by an unsubscribe, sent before its ack, move no other prefix (B4, B5)', async () => {
    const requests: (SubscribeFrame | UnsubscribeFrame)[] = [];
    server.onFrame = (_conn, f) => {
      if (f.kind === FrameKind.Subscribe || f.kind === FrameKind.Unsubscribe) requests.push(f);
    };
    const c = client({ prefixes: [], replayDeltaMs: 0 });
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    await c.connect();
    const conn = await server.connection(0);
    const ack = (n: number) => conn.enc.ack((requests[n] as SubscribeFrame).reqId, 0, 0);

    // a/x/ replays a/x/1; then it is dropped and a/ subscribed while its stopped replay still sends a/x/2.
    const ax = c.subscribe('a/x/');
    ax.catch(() => undefined);
    await vi.waitFor(() => expect(requests.length).toBe(1));
    conn.send(ack(0).message(R, 'a/x/1', 100n, Buffer.from('1')).take());
    await vi.waitFor(() => expect(byPrefix(c)['a/x/']?.lastTs).toBe(100n));
    const unsubscribed = c.unsubscribe('a/x/');
    const a = c.subscribe('a/');
    await vi.waitFor(() => expect(requests.length).toBe(3));
    conn.send(conn.enc.message(R, 'a/x/2', 900n, Buffer.from('2')).prefixDone('a/x/', 2, 900n, false).take());
    conn.send(ack(1).take());
    conn.send(ack(2).message(R, 'a/0', 50n, Buffer.from('0')).prefixDone('a/', 1, 60n, false).take());
    await Promise.all([unsubscribed, a]);
    expect(byPrefix(c)).toEqual({ 'a/': { lastTs: 60n, replayed: true } });
    await expect(ax).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });

    // b/ dropped and subscribed again: the prefix-done of the first, sent before the unsubscribe, is not the second's.
    const first = c.subscribe('b/');
    first.catch(() => undefined);
    await vi.waitFor(() => expect(requests.length).toBe(4));
    conn.send(ack(3).take());
    const again = c.unsubscribe('b/');
    let done = false;
    const second = c.subscribe('b/').then(() => {
      done = true;
    });
    await vi.waitFor(() => expect(requests.length).toBe(6));
    conn.send(conn.enc.prefixDone('b/', 0, 70n, false).take());
    conn.send(ack(4).take());
    conn.send(ack(5).message(0, 'a/ping', 1n, Buffer.from('p')).take());
    await again;
    // a/ping comes after them: once it is read, so are they.
    await vi.waitFor(() => expect(seen).toContain('a/ping'));
    expect(done).toBe(false);
    expect(byPrefix(c)['b/']).toEqual({ lastTs: null, replayed: false });
    conn.send(conn.enc.prefixDone('b/', 0, 80n, false).take());
    await second;
    expect(byPrefix(c)['b/']).toEqual({ lastTs: 80n, replayed: true });
  });

  it('prefixes - a replay-done or resync on a connection that named prefixes ends it: the server must send prefix-done (B1)', async () => {
    server.onHello = (conn) => {
      if (server.conns.length === 1) server.welcome(conn, true);
      else server.welcomePrefixes(conn);
    };
    const c = client({ prefixes: ['a/'], reconnect: () => 0 });
    const reasons: string[] = [];
    c.on('disconnect', (e) => reasons.push(e.code));
    await c.connect();
    expect(reasons).toEqual(['GOSSIP_ERR_UNEXPECTED_FRAME']);
    expect(server.conns.length).toBe(2);
  });
});

describe('scoped consumers', () => {
  it('state view - a view with a prefix holds only ids under it; a prefix-resync drops only that prefix’s ids not seen fresh (B6)', async () => {
    const c = client({ prefixes: ['flags/', 'presence/'], reconnect: () => 0 });
    const flags = new GossipState(c, { prefix: 'flags/' });
    const all = new GossipState(c);
    const flagSynced: number[] = [];
    flags.on('synced', () => flagSynced.push(flags.size));
    await c.connect();
    expect(flagSynced).toEqual([0]);
    const conn = await server.connection(0);
    conn.send(
      conn.enc
        .message(0, 'flags/a', 10n, Buffer.from('old'))
        .message(0, 'flags/b', 10n, Buffer.from('gone'))
        .message(0, 'presence/p', 10n, Buffer.from('here'))
        .take(),
    );
    await vi.waitFor(() => expect(all.size).toBe(3));
    expect([...flags.keys()]).toEqual(['flags/a', 'flags/b']);
    server.onHello = (next) => {
      server.welcomeThen(next, (enc) =>
        enc
          .prefixResync('flags/', ResyncReason.Epoch, null)
          // Older than what the view held, and the truth: the first word after the resync.
          .message(R, 'flags/a', 5n, Buffer.from('new'))
          .prefixDone('flags/', 1, 5n, true)
          .prefixDone('presence/', 0, 10n, false),
      );
    };
    conn.socket.destroy();
    await vi.waitFor(() => expect(flagSynced).toEqual([0, 1]));
    expect(flags.toMap()).toEqual(new Map([['flags/a', 'new']]));
    expect(all.toMap()).toEqual(
      new Map([
        ['flags/a', 'new'],
        ['presence/p', 'here'],
      ]),
    );
  });

  it('state view - a view or messages() of a prefix the client does not cover throws GOSSIP_ERR_NOT_SUBSCRIBED', () => {
    const c = client({ prefixes: ['flags/'] });
    const code = expect.objectContaining({ code: 'GOSSIP_ERR_NOT_SUBSCRIBED' });
    expect(() => new GossipState(c, { prefix: 'jobs/' })).toThrow(code);
    expect(() => c.messages({ prefix: 'fl' })).toThrow(code);
    expect(() => new GossipState(c, { prefix: 'flags/x/' })).not.toThrow();
    expect(() => new GossipState(client(), { prefix: 'jobs/' })).not.toThrow();
    c.subscribe('jobs/').catch(() => undefined);
    expect(() => new GossipState(c, { prefix: 'jobs/' })).not.toThrow();
  });

  it('messages - with a prefix, only the ids under it', async () => {
    const c = client();
    await c.connect();
    const ac = new AbortController();
    const stream = c.messages({ prefix: 'flags/', signal: ac.signal });
    const conn = await server.connection(0);
    conn.send(
      conn.enc
        .message(0, 'presence/p', 1n, Buffer.from('x'))
        .message(0, 'flags/a', 2n, Buffer.from('y'))
        .message(0, 'flagsX', 3n, Buffer.from('z'))
        .message(0, 'flags/b', 4n, Buffer.from('w'))
        .take(),
    );
    const ids: string[] = [];
    for await (const m of stream) {
      ids.push(m.id);
      if (ids.length === 2) ac.abort();
    }
    expect(ids).toEqual(['flags/a', 'flags/b']);
  });

  it('state view - made late with a prefix it catches up on that prefix alone: a hello naming just it, from the since of its first replay', async () => {
    const c = client({ prefixes: ['flags/', 'presence/'], since: 'all' });
    const jobsSubscribed = c.subscribe('jobs/', { since: 'now' });
    await c.connect();
    await jobsSubscribed;
    const flags = new GossipState(c, { prefix: 'flags/' });
    await once(flags as never, 'synced');
    const extra = await server.connection(1);
    expect(extra.hello).toMatchObject({ prefixes: [{ prefix: 'flags/', since: MIN_TS }], epoch: null, echo: false });
    // An unscoped view: every prefix but the live-only jobs/.
    const all = new GossipState(c);
    await once(all as never, 'synced');
    expect((await server.connection(2)).hello.prefixes).toEqual([
      { prefix: 'flags/', since: MIN_TS },
      { prefix: 'presence/', since: MIN_TS },
    ]);
    // Under a live-only prefix there is nothing to catch up: no connection.
    const jobs = new GossipState(c, { prefix: 'jobs/' });
    await once(jobs as never, 'synced');
    expect(server.conns.length).toBe(3);
  });

  it('state view - made late with a prefix on a client without prefixes: a prefixes hello if the server has them, else the whole replay, filtered', async () => {
    const c = client();
    await c.connect();
    const flags = new GossipState(c, { prefix: 'flags/' });
    await once(flags as never, 'synced');
    expect((await server.connection(1)).hello.prefixes).toEqual([{ prefix: 'flags/', since: MIN_TS }]);

    server.maxPrefixes = undefined;
    const old = client();
    server.onHello = (conn) => {
      server.welcomeThen(conn, (enc) =>
        enc
          .resync(ResyncReason.Full, null)
          .message(R, 'flags/a', 1n, Buffer.from('a'))
          .message(R, 'presence/p', 2n, Buffer.from('p'))
          .replayDone(2, 2n, true),
      );
    };
    await old.connect();
    const view = new GossipState(old, { prefix: 'flags/' });
    await once(view as never, 'synced');
    const extra = await server.connection(3);
    expect(extra.hello.prefixes).toBeUndefined();
    expect(view.toMap()).toEqual(new Map([['flags/a', 'a']]));
  });
});

describe('prefixes taken by a client made without them', () => {
  it('prefixes - subscribe on a connected client without prefixes sends a subscribe frame and resolves at its prefix-done; "" stays, and the next hello names both with their own since', async () => {
    let subscribe: SubscribeFrame | undefined;
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Subscribe) return;
      subscribe = f;
      conn.send(
        conn.enc
          .ack(f.reqId, 0, 0)
          .message(R, 'jobs/1', 7n * MS, Buffer.from('j'))
          .take(),
      );
    };
    const c = client({ replayDeltaMs: 1, reconnect: () => 0 });
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    const synced: unknown[] = [];
    c.on('synced', (info) => synced.push(info));
    await c.connect();
    const conn = await server.connection(0);
    expect(conn.hello.prefixes).toBeUndefined();
    conn.send(conn.enc.message(0, 'x/1', 20n * MS, Buffer.from('x')).take());
    await vi.waitFor(() => expect(c.lastTs).toBe(20n * MS));
    let done = false;
    const subscribed = c.subscribe('jobs/', { since: 5n * MS }).then(() => {
      done = true;
    });
    // Taken at once: "" first, where the connection's replay stands, then the new prefix.
    expect(c.prefixes).toEqual([
      { prefix: '', lastTs: 20n * MS, replayed: true },
      { prefix: 'jobs/', lastTs: null, replayed: false },
    ]);
    await vi.waitFor(() => expect(seen).toEqual(['x/1', 'jobs/1']));
    expect(subscribe).toMatchObject({ prefix: 'jobs/', since: 5n * MS, epoch: null });
    expect(done).toBe(false);
    conn.send(
      conn.enc
        .prefixDone('jobs/', 1, 30n * MS, false)
        .message(0, 'y/1', 40n * MS, Buffer.from('y'))
        .take(),
    );
    await subscribed;
    await vi.waitFor(() => expect(seen).toEqual(['x/1', 'jobs/1', 'y/1']));
    expect(synced.slice(1)).toEqual([{ count: 1, snapshot: false, newestTs: 30n * MS, prefix: 'jobs/' }]);
    expect(byPrefix(c)).toEqual({
      '': { lastTs: 40n * MS, replayed: true },
      'jobs/': { lastTs: 30n * MS, replayed: true },
    });
    expect(c.state).toBe('ready');
    expect(c.covers('anything/')).toBe(true);
    // A late unscoped view catches up on "" alone: it covers jobs/, replayed from no earlier.
    const all = new GossipState(c);
    await once(all as never, 'synced');
    expect((await server.connection(1)).hello.prefixes).toEqual([{ prefix: '', since: MIN_TS }]);

    conn.socket.destroy();
    const again = await server.connection(2);
    expect(again.hello).toMatchObject({ since: null, epoch: server.epoch });
    expect(again.hello.prefixes).toEqual([
      { prefix: '', since: 39n * MS },
      { prefix: 'jobs/', since: 29n * MS },
    ]);
    await vi.waitFor(() => expect(c.state).toBe('ready'));
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['', 'jobs/']);
  });

  it('prefixes - unsubscribe("") then sends an unsubscribe frame and stops every id but those of the other prefixes; unscoped consumers go on with what still comes', async () => {
    const { gate, release } = latch();
    let unsubscribe: UnsubscribeFrame | undefined;
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Subscribe)
        conn.send(conn.enc.ack(f.reqId, 0, 0).prefixDone(f.prefix, 0, MIN_TS, false).take());
      if (f.kind !== FrameKind.Unsubscribe) return;
      unsubscribe = f;
      // Queued before the server took it: x/2 is under "" alone and is not delivered.
      conn.send(conn.enc.message(0, 'x/2', 10n, Buffer.from('x')).message(0, 'jobs/2', 11n, Buffer.from('j')).take());
      void gate.then(() => conn.send(conn.enc.ack(f.reqId, 0, 0).take()));
    };
    const c = client({ reconnect: () => 0 });
    const view = new GossipState(c);
    const stream = c.messages();
    await c.connect();
    await c.subscribe('jobs/');
    const unsubscribed = c.unsubscribe('');
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['jobs/']);
    expect(c.covers('x/')).toBe(false);
    expect(c.covers('jobs/a')).toBe(true);
    await vi.waitFor(() => expect(view.has('jobs/2')).toBe(true));
    expect(unsubscribe?.prefix).toBe('');
    release();
    await unsubscribed;
    const conn = await server.connection(0);
    conn.send(conn.enc.message(0, 'x/3', 12n, Buffer.from('x')).message(0, 'jobs/3', 13n, Buffer.from('j')).take());
    await vi.waitFor(() => expect(view.has('jobs/3')).toBe(true));
    expect([...view.keys()]).toEqual(['jobs/2', 'jobs/3']);
    const ids: string[] = [];
    for await (const m of stream) {
      ids.push(m.id);
      if (ids.length === 2) break;
    }
    expect(ids).toEqual(['jobs/2', 'jobs/3']);
    // Scoped consumers check what the client still covers; "" named as a prefix included.
    const code = expect.objectContaining({ code: 'GOSSIP_ERR_NOT_SUBSCRIBED' });
    expect(() => new GossipState(c, { prefix: 'x/' })).toThrow(code);
    expect(() => c.messages({ prefix: '' })).toThrow(code);
    expect(() => c.messages({ prefix: 'jobs/a/' })).not.toThrow();
    expect(conn.frames.map((f) => [f.kind, 'prefix' in f ? f.prefix : undefined])).toEqual([
      [FrameKind.Hello, undefined],
      [FrameKind.Subscribe, 'jobs/'],
      [FrameKind.Unsubscribe, ''],
    ]);
    conn.socket.destroy();
    // jobs/ from its own lastTs (jobs/3) − 5 s; "" is gone.
    expect((await server.connection(1)).hello.prefixes).toEqual([{ prefix: 'jobs/', since: 13n - 5_000n * MS }]);
  });

  it('prefixes - taken while the hello’s replay runs: it stays the replay of "", ended by the replay-done; later "" is dropped like any prefix (R2, B4)', async () => {
    const requests: (SubscribeFrame | UnsubscribeFrame)[] = [];
    server.onHello = (conn) => {
      server.welcomeThen(conn, (enc) => enc.message(R, 'x/1', 10n, Buffer.from('1')));
    };
    server.onFrame = (_conn, f) => {
      if (f.kind === FrameKind.Subscribe || f.kind === FrameKind.Unsubscribe) requests.push(f);
    };
    const c = client({ replayDeltaMs: 0, reconnect: () => 0 });
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    let ready = false;
    const connected = c.connect().then(() => {
      ready = true;
    });
    await vi.waitFor(() => expect(seen).toEqual(['x/1']));
    const jobs = c.subscribe('jobs/');
    expect(byPrefix(c)).toEqual({
      '': { lastTs: 10n, replayed: false },
      'jobs/': { lastTs: null, replayed: false },
    });
    await vi.waitFor(() => expect(requests.length).toBe(1));
    const conn = await server.connection(0);
    const ack = (n: number) => conn.enc.ack((requests[n] as SubscribeFrame).reqId, 0, 0);
    // Still the hello's replay: it raises "" alone; jobs/ waits its turn.
    conn.send(ack(0).message(R, 'jobs/1', 20n, Buffer.from('j')).take());
    await vi.waitFor(() => expect(seen).toEqual(['x/1', 'jobs/1']));
    expect(byPrefix(c)).toEqual({
      '': { lastTs: 20n, replayed: false },
      'jobs/': { lastTs: null, replayed: false },
    });
    expect(c.state).toBe('replaying');
    conn.send(conn.enc.replayDone(2, 30n, false).message(R, 'jobs/0', 5n, Buffer.from('0')).take());
    await connected;
    expect(ready).toBe(true);
    await vi.waitFor(() => expect(byPrefix(c)['jobs/']?.lastTs).toBe(5n));
    conn.send(conn.enc.prefixDone('jobs/', 1, 30n, false).take());
    await jobs;
    expect(byPrefix(c)).toEqual({
      '': { lastTs: 30n, replayed: true },
      'jobs/': { lastTs: 30n, replayed: true },
    });

    // The next hello names both; "" is dropped like any prefix, x/2 sent before the ack is not delivered.
    server.onHello = (next) => server.welcomePrefixes(next);
    conn.socket.destroy();
    const again = await server.connection(1);
    expect(again.hello.prefixes).toEqual([
      { prefix: '', since: 30n },
      { prefix: 'jobs/', since: 30n },
    ]);
    await vi.waitFor(() => expect(c.state).toBe('ready'));
    const unsubscribed = c.unsubscribe('');
    await vi.waitFor(() => expect(requests.length).toBe(2));
    expect(requests[1]).toMatchObject({ kind: FrameKind.Unsubscribe, prefix: '' });
    again.send(
      again.enc
        .message(0, 'x/2', 40n, Buffer.from('2'))
        .ack((requests[1] as UnsubscribeFrame).reqId, 0, 0)
        .message(0, 'jobs/2', 41n, Buffer.from('2'))
        .take(),
    );
    await unsubscribed;
    await vi.waitFor(() => expect(seen.at(-1)).toBe('jobs/2'));
    expect(seen).not.toContain('x/2');
    expect(c.state).toBe('ready');
  });

  it('prefixes - unsubscribe("") while the hello’s replay runs: connect() resolves, and a replay-done sent before the ack is ignored (B4)', async () => {
    let unsubscribe: UnsubscribeFrame | undefined;
    server.onHello = (conn) => {
      server.welcomeThen(conn, (enc) => enc.message(R, 'x/1', 10n, Buffer.from('1')));
    };
    server.onFrame = (_conn, f) => {
      if (f.kind === FrameKind.Unsubscribe) unsubscribe = f;
    };
    const c = client();
    const synced: unknown[] = [];
    c.on('synced', (info) => synced.push(info));
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    const connected = c.connect();
    await vi.waitFor(() => expect(seen).toEqual(['x/1']));
    const unsubscribed = c.unsubscribe('');
    await connected;
    expect(c.state).toBe('ready');
    expect(c.prefixes).toEqual([]);
    await vi.waitFor(() => expect(unsubscribe?.prefix).toBe(''));
    const conn = await server.connection(0);
    conn.send(
      conn.enc
        .message(R, 'x/2', 11n, Buffer.from('2'))
        .replayDone(2, 11n, false)
        .ack((unsubscribe as UnsubscribeFrame).reqId, 0, 0)
        .take(),
    );
    await unsubscribed;
    expect(seen).toEqual(['x/1']);
    expect(synced).toEqual([]);
    expect(c.state).toBe('ready');
  });

  it('prefixes - on a server without prefixes they reject with GOSSIP_ERR_PREFIXES_UNSUPPORTED and the client stays without them, connected', async () => {
    server.maxPrefixes = undefined;
    server.maxPrefixBytes = undefined;
    const c = client({ reconnect: () => 0 });
    const seen: string[] = [];
    c.on('message', (m) => seen.push(m.id));
    await c.connect();
    const unsupported = expect.objectContaining({ code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED' });
    await expect(c.subscribe('jobs/')).rejects.toEqual(unsupported);
    await expect(c.unsubscribe('')).rejects.toEqual(unsupported);
    expect(c.prefixes).toBeUndefined();
    expect(c.covers('x/')).toBe(true);
    expect(c.state).toBe('ready');
    const conn = await server.connection(0);
    conn.send(conn.enc.message(0, 'x/1', 5n, Buffer.from('x')).take());
    await vi.waitFor(() => expect(seen).toEqual(['x/1']));
    expect(conn.frames.map((f) => f.kind)).toEqual([FrameKind.Hello]);
    // While reconnecting too, the last welcome decides.
    const reconnecting = new Promise((r) => c.once('reconnecting', r));
    conn.socket.destroy();
    await reconnecting;
    await expect(c.subscribe('jobs/')).rejects.toEqual(unsupported);
    expect((await server.connection(1)).hello.prefixes).toBeUndefined();
  });

  it('prefixes - taken while the hello waits for its welcome: the welcome decides; with maxPrefixes the subscribe follows it and the hello’s resync and replay-done are those of ""', async () => {
    const { gate, release } = latch();
    server.onHello = (conn) =>
      void gate.then(() => {
        server.welcomeThen(conn, (enc) =>
          enc.resync(ResyncReason.Full, null).message(R, 'x/1', 10n, Buffer.from('x')).replayDone(1, 10n, true),
        );
      });
    const c = client();
    const resyncs: unknown[] = [];
    c.on('resync', (info) => resyncs.push(info));
    const synced: unknown[] = [];
    c.on('synced', (info) => synced.push(info));
    const view = new GossipState(c);
    const connected = c.connect();
    const conn = await server.connection(0);
    expect(conn.hello.prefixes).toBeUndefined();
    const subscribed = c.subscribe('jobs/', { since: 'now' });
    release();
    await Promise.all([connected, subscribed]);
    expect(resyncs).toEqual([{ reason: 'full', horizon: null }]);
    expect(synced).toEqual([
      { count: 1, snapshot: true, newestTs: 10n },
      { count: 0, snapshot: false, newestTs: MIN_TS, prefix: 'jobs/' },
    ]);
    expect(view.toMap()).toEqual(new Map([['x/1', 'x']]));
    expect(byPrefix(c)).toEqual({ '': { lastTs: 10n, replayed: true }, 'jobs/': { lastTs: null, replayed: true } });
    expect((sent(conn, FrameKind.Subscribe) as SubscribeFrame[]).map((f) => [f.prefix, f.since])).toEqual([
      ['jobs/', null],
    ]);
  });

  it('prefixes - taken while the hello waits for its welcome: a welcome without maxPrefixes rejects what waits, and the client goes on without prefixes', async () => {
    server.maxPrefixes = undefined;
    const { gate, release } = latch();
    server.onHello = (conn) => void gate.then(() => server.welcome(conn, true, 10n));
    const c = client();
    const connected = c.connect();
    const conn = await server.connection(0);
    const subscribed = expect(c.subscribe('jobs/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED' });
    const unsubscribed = expect(c.unsubscribe('')).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED' });
    expect(c.prefixes?.map((p) => p.prefix)).toEqual(['jobs/']);
    release();
    await connected;
    await Promise.all([subscribed, unsubscribed]);
    expect(c.prefixes).toBeUndefined();
    expect(c.lastTs).toBe(10n);
    expect(c.state).toBe('ready');
    expect(conn.frames.map((f) => f.kind)).toEqual([FrameKind.Hello]);
  });

  it('prefixes - taken before connect(), the first hello names "" and the new prefix; on a server without prefixes it fails as a scoped hello does, then goes on without them', async () => {
    const c = client({ since: 42n });
    const subscribed = c.subscribe('jobs/', { since: 'now' });
    await c.connect();
    await subscribed;
    const conn = await server.connection(0);
    expect(conn.hello.since).toBeNull();
    expect(conn.hello.prefixes).toEqual([
      { prefix: '', since: 42n },
      { prefix: 'jobs/', since: null },
    ]);
    expect(conn.frames.map((f) => f.kind)).toEqual([FrameKind.Hello]);

    server.maxPrefixes = undefined;
    const old = client({ waitOnFirstConnect: true, reconnect: () => 0 });
    const errors: string[] = [];
    old.on('error', (e) => errors.push(e.code));
    const rejected = expect(old.subscribe('jobs/')).rejects.toMatchObject({
      code: 'GOSSIP_ERR_PREFIXES_UNSUPPORTED',
    });
    await old.connect();
    await rejected;
    expect(errors).toEqual(['GOSSIP_ERR_PREFIXES_UNSUPPORTED']);
    expect(old.prefixes).toBeUndefined();
    expect((await server.connection(1)).hello.prefixes).toEqual([
      { prefix: '', since: MIN_TS },
      { prefix: 'jobs/', since: MIN_TS },
    ]);
    const plain = await server.connection(2);
    expect(plain.hello.prefixes).toBeUndefined();
    expect(plain.hello.since).toBe(MIN_TS);
  });

  it('prefixes - calls that change nothing leave the client without prefixes: its reconnect hello is byte for byte the same (R1, H1)', async () => {
    server.maxPrefixes = 1;
    server.epoch = '00112233445566778899aabbccddeeff';
    server.onHello = (conn) => server.welcome(conn, true, 1_700_000_005_123_456_789n);
    const c = client({ name: 'svc', echo: false, reconnect: () => 0 });
    // "" is held: before connect() it resolves once the first replay is done.
    const held = c.subscribe('');
    await c.connect();
    await held;
    await c.subscribe('');
    await expect(c.subscribe('', { since: 'all' })).rejects.toMatchObject({ code: 'GOSSIP_ERR_ALREADY_SUBSCRIBED' });
    await expect(c.subscribe('x'.repeat(257))).rejects.toMatchObject({ code: 'GOSSIP_ERR_PREFIX_TOO_LONG' });
    await expect(c.subscribe('jobs/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_TOO_MANY_PREFIXES' });
    await expect(c.unsubscribe('jobs/')).rejects.toMatchObject({ code: 'GOSSIP_ERR_NOT_SUBSCRIBED' });
    expect(c.prefixes).toBeUndefined();
    const first = await server.connection(0);
    expect(first.frames.map((f) => f.kind)).toEqual([FrameKind.Hello]);
    // The bytes the client sent before prefixes existed (HEAD): since -2^63, echo off, { name: "svc" }.
    expect(Buffer.concat(first.chunks).toString('hex')).toBe(
      '0000002901894753500105' + '8000000000000000' + '00000000000000000000000000000000' + '81a46e616d65a3737663',
    );
    first.socket.destroy();
    const again = await server.connection(1);
    // since = 1700000005123456789 − 5 s, the epoch, echo off, { name: "svc" }: flags 7, no prefixes key.
    expect(Buffer.concat(again.chunks).toString('hex')).toBe(
      '0000002901894753500107' + '17979cfe3d85cd15' + '00112233445566778899aabbccddeeff' + '81a46e616d65a3737663',
    );
    expect(again.frames.map((f) => f.kind)).toEqual([FrameKind.Hello]);
  });
});
