import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type ClientMessage,
  type ClientOptions,
  GossipClient,
  GossipState,
  jsonCodec,
  msgpackCodec,
  type PublishResult,
  utf8Codec,
} from '@gossip/client';
import { FrameDecoder, FrameKind, type GossipError } from '@gossip/protocol';
import type { Gossipd } from '@gossip/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Relay, relay } from '../src/relay.js';
import { harness } from './harness.js';

// End to end: the real gossipd process and the real @gossip/client over TCP (and TLS).

const h = harness();
const relays: Relay[] = [];
const gates: CatchUpGate[] = [];

afterEach(() => {
  for (const r of relays.splice(0)) r.close();
  for (const g of gates.splice(0)) g.close();
});

function start(args: string[] = [], dataDir?: string): Promise<Gossipd> {
  return h.start({ args, ...(dataDir ? { dataDir } : {}) });
}

/** Starts gossipd again on a folder and a port (the helper passes `--port 0` first; the last `--port` wins). */
function restart(dataDir: string, port: number, args: string[] = []): Promise<Gossipd> {
  return start([...args, '--port', String(port)], dataDir);
}

function client<T>(port: number, options: ClientOptions<T> = {}): GossipClient<T> {
  const c = new GossipClient<T>({ address: `127.0.0.1:${port}`, reconnect: () => 5, ...options });
  h.keep(c);
  return c;
}

/** A GossipClient or a GossipState: typed emitters, called here with loose event names. */
interface Listenable {
  on(event: never, listener: never): unknown;
  off(event: never, listener: never): unknown;
}

/** Resolves once `check()` holds: checked now and after every `event` of `emitter`. */
function until(emitter: Listenable, event: string, check: () => boolean): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve) => {
    const listener = () => {
      if (!check()) return;
      emitter.off(event as never, listener as never);
      resolve();
    };
    emitter.on(event as never, listener as never);
  });
}

/** The next `event` of `emitter` whose first argument matches. */
function next<A>(emitter: Listenable, event: string, match: (a: A) => boolean = () => true): Promise<A> {
  return new Promise((resolve) => {
    const listener = (a: A) => {
      if (!match(a)) return;
      emitter.off(event as never, listener as never);
      resolve(a);
    };
    emitter.on(event as never, listener as never);
  });
}

/** A state view as a plain object `id → { value, ts }`, for comparisons. */
function snapshot<T>(view: GossipState<T>): Record<string, { value: T; ts: bigint }> {
  return Object.fromEntries([...view.entries()].map(([id, e]) => [id, { value: e.value, ts: e.ts }]));
}

/** What a brand-new client replays from `port` ('all'), as a snapshot. */
async function fullReplay<T>(
  port: number,
  options: ClientOptions<T> = {},
): Promise<Record<string, { value: T; ts: bigint }>> {
  const fresh = client<T>(port, { ...options, since: 'all' });
  const view = new GossipState(fresh);
  await fresh.connect();
  const result = snapshot(view);
  await fresh.close();
  return result;
}

interface CatchUpGate {
  readonly port: number;
  /** The server has sent the whole replay of the second connection (the proxy holds it): it was taken. */
  readonly snapshotTaken: Promise<void>;
  /** The client closed the second connection. */
  readonly catchUpClosed: Promise<void>;
  /** Hands the client what was held, and passes the rest through. */
  release(): void;
  close(): void;
}

/**
 * A TCP proxy to gossipd on `target` that passes its first connection (the client's) through
 * and holds back what gossipd sends on the second (a late GossipState's catch-up) until
 * released, so a test can change the log after the snapshot was taken and before the view has it.
 */
async function catchUpGate(target: number): Promise<CatchUpGate> {
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => {
    release = r;
  });
  let taken: () => void = () => undefined;
  const snapshotTaken = new Promise<void>((r) => {
    taken = r;
  });
  let closed: () => void = () => undefined;
  const catchUpClosed = new Promise<void>((r) => {
    closed = r;
  });
  const r = await relay(target, {
    downstream: (n, up, down) => {
      if (n !== 1) return false;
      const held: Buffer[] = [];
      let holding = true;
      const frames = new FrameDecoder((f) => {
        if (f.kind === FrameKind.ReplayDone) taken();
      });
      up.on('data', (chunk: Buffer) => {
        frames.push(chunk);
        if (holding) held.push(chunk);
        else down.write(chunk);
      });
      void released.then(() => {
        holding = false;
        for (const chunk of held.splice(0)) down.write(chunk);
      });
      down.on('close', () => closed());
      return true;
    },
  });
  return { port: r.port, snapshotTaken, catchUpClosed, release: () => release(), close: r.close };
}

describe('client - ride through a restart', () => {
  async function rideThrough(args: string[], down: (d: Gossipd) => Promise<unknown>): Promise<void> {
    const d = await start(args);
    const port = d.port;
    // S reaches gossipd through a relay, so the test can keep it away until P has published more.
    const r = await relay(port);
    relays.push(r);
    const s = client<string>(r.port, { codec: utf8Codec, name: 'subscriber' });
    const view = new GossipState(s);
    const sinces: (bigint | null)[] = [];
    s.on('connect', (info) => sinces.push(info.since));
    await s.connect();
    const epoch = s.epoch;
    const p = client<string>(port, { codec: utf8Codec, since: 'now', name: 'publisher' });
    await p.connect();

    const IDS = 300;
    const WINDOW = 16;
    const acked = new Map<string, { ts: bigint; value: string }>();
    const results: PublishResult[] = [];
    const failures: unknown[] = [];
    const pending = new Set<Promise<void>>();
    let n = 0;
    let offline = 0;
    const publishOne = (): void => {
      const i = n++;
      const id = `k${i % IDS}`;
      const value = `v${i}`;
      if (p.state !== 'ready' && p.state !== 'replaying') offline++;
      const pr = p.publish(id, value).then(
        (res) => {
          results.push(res);
          const prev = acked.get(id);
          if (!prev || res.ts > prev.ts) acked.set(id, { ts: res.ts, value });
        },
        (e: unknown) => {
          failures.push(e);
        },
      );
      pending.add(pr);
      void pr.finally(() => pending.delete(pr));
    };
    const missing = (expected: Map<string, { ts: bigint }>) =>
      [...expected].filter(([id, a]) => (view.entry(id)?.ts ?? -1n) < a.ts).map(([id]) => id);

    let signalMidway!: () => void;
    const midway = new Promise<void>((res) => {
      signalMidway = res;
    });
    let signalLater!: () => void;
    const later = new Promise<void>((res) => {
      signalLater = res;
    });
    let restarted = false;
    let afterRestart = 0;
    const loop = (async () => {
      for (let i = 0; i < 100_000; i++) {
        if (i === IDS + 100) signalMidway();
        if (restarted && ++afterRestart === IDS / 2) signalLater();
        if (afterRestart > IDS) break;
        while (pending.size >= WINDOW) await Promise.race(pending);
        publishOne();
      }
      await Promise.all(pending);
    })();

    await midway;
    r.hold();
    const sDown = next<GossipError>(s, 'disconnect');
    const pDown = next<GossipError>(p, 'disconnect');
    await down(d);
    await Promise.all([sDown, pDown]);
    // Through the outage P keeps publishing: these wait in its offline queue.
    for (let i = 0; i < 50; i++) publishOne();
    expect(p.queued).toBeGreaterThanOrEqual(50);
    const pBack = next(p, 'synced');
    await restart(d.dataDir, port, args);
    restarted = true;
    await pBack;

    // P has drained its queue and published more; S comes back in the middle of P's stream.
    await later;
    const ackedBefore = new Map(acked);
    const sBack = next(view, 'synced');
    r.release();
    await sBack;
    // Everything acked before S's hello was in its replay.
    expect(missing(ackedBefore)).toEqual([]);
    await loop;

    expect(failures).toEqual([]);
    expect(offline).toBeGreaterThanOrEqual(50);
    // A stale ack is only allowed for a publish re-sent after the reconnect (its first copy was stored).
    expect(results.filter((x) => x.status === 'stale' && !x.retried)).toEqual([]);
    expect(results).toHaveLength(n);
    expect(acked.size).toBe(IDS);
    expect(s.epoch).toBe(epoch);
    expect(sinces).toHaveLength(2);
    expect(typeof sinces[1]).toBe('bigint');

    // S has every acked publish's newest value: nothing missed across the restart.
    await until(view, 'change', () => missing(acked).length === 0);
    for (const [id, a] of acked) expect(view.entry(id), id).toEqual({ value: a.value, ts: a.ts });
    // And exactly what a fresh client replays.
    expect(snapshot(view)).toEqual(await fullReplay(port, { codec: utf8Codec }));
  }

  it('client - a subscriber and a publisher ride through a SIGTERM restart on the same port', async () => {
    await rideThrough([], (d) => d.stop());
  });

  it('client - a subscriber and a publisher ride through a SIGKILL under --fsync always', async () => {
    await rideThrough(['--fsync', 'always'], (d) => d.kill());
  });
});

describe('client - resync', () => {
  it('client - a reconnect with since older than the compaction horizon gets a horizon resync and drops the deleted id', async () => {
    const args = ['--tombstone-retention', '1ms', '--segment-size', '4KiB', '--compact-threshold', '0'];
    const d = await start(args);
    const port = d.port;
    const s = client<string>(port, { codec: utf8Codec });
    const view = new GossipState(s);
    await s.connect();
    const w = client<string>(port, { codec: utf8Codec, since: 'now' });
    await w.connect();
    for (const id of ['a', 'b', 'c']) await w.publish(id, `${id}1`);
    await until(view, 'change', () => view.size === 3);
    await w.close();

    // S loses the server; while it is away, on another port, b is deleted and compaction drops the tombstone.
    const sDown = next(s, 'disconnect');
    await d.stop();
    await sDown;
    const side = await start(args, d.dataDir);
    const w2 = client<string>(side.port, { codec: utf8Codec, since: 'now' });
    await w2.connect();
    expect((await w2.delete('b')).status).toBe('accepted');
    for (let i = 0; i < 20; i++) await w2.publish(`fill${i}`, 'x'.repeat(400));
    await w2.close();
    const compacted = await side.admin('/compact', 'POST');
    expect(compacted.status).toBe(200);
    expect(JSON.parse(compacted.text).tombstonesDropped).toBeGreaterThanOrEqual(1);
    await side.stop();

    const resync = next<{ reason: string; horizon: bigint | null }>(s, 'resync');
    const synced = next(view, 'synced');
    await restart(d.dataDir, port, args);
    const info = await resync;
    expect(info.reason).toBe('horizon');
    expect(info.horizon).not.toBeNull();
    await synced;
    expect(view.has('b')).toBe(false);
    expect(view.get('a')).toBe('a1');
    expect(view.get('c')).toBe('c1');
    expect(view.size).toBe(22);
    expect(snapshot(view)).toEqual(await fullReplay(port, { codec: utf8Codec }));
  });

  it('client - a server replaced by one with a fresh data folder gives an epoch resync and only the new data', async () => {
    const a = await start();
    const port = a.port;
    const s = client<string>(port, { codec: utf8Codec });
    const view = new GossipState(s);
    await s.connect();
    const oldEpoch = s.epoch;
    const w = client<string>(port, { codec: utf8Codec, since: 'now' });
    await w.connect();
    await w.publish('x', 'old-x');
    const y = await w.publish('y', 'old-y');
    await until(view, 'change', () => view.size === 2);
    await w.close();

    const sDown = next(s, 'disconnect');
    await a.stop();
    await sDown;
    // The replacement, filled on another port first: y with an older ts than S holds, and z.
    const b = await start();
    const w2 = client<string>(b.port, { codec: utf8Codec, since: 'now' });
    await w2.connect();
    const yB = await w2.publish('y', 'new-y', { ts: y.ts - 1_000_000n });
    const zB = await w2.publish('z', 'new-z');
    await w2.close();
    await b.stop();

    const resync = next<{ reason: string }>(s, 'resync');
    const synced = next(view, 'synced');
    await restart(b.dataDir, port);
    expect((await resync).reason).toBe('epoch');
    await synced;
    expect(s.epoch).not.toBe(oldEpoch);
    expect(snapshot(view)).toEqual({
      y: { value: 'new-y', ts: yB.ts },
      z: { value: 'new-z', ts: zB.ts },
    });
    expect(snapshot(view)).toEqual(await fullReplay(port, { codec: utf8Codec }));
  });
});

describe('client - auth and TLS', () => {
  let tlsDir: string | undefined;
  let cert = '';
  let key = '';
  let ca: Buffer;

  beforeAll(async () => {
    const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
    if (existsSync(join(fixtures, 'tls-cert.pem')) && existsSync(join(fixtures, 'tls-key.pem'))) {
      cert = join(fixtures, 'tls-cert.pem');
      key = join(fixtures, 'tls-key.pem');
      ca = await readFile(existsSync(join(fixtures, 'tls-ca.pem')) ? join(fixtures, 'tls-ca.pem') : cert);
      return;
    }
    tlsDir = await mkdtemp(join(tmpdir(), 'gossip-tls-'));
    cert = join(tlsDir, 'cert.pem');
    key = join(tlsDir, 'key.pem');
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    ca = await readFile(cert);
  });

  afterAll(async () => {
    if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
  });

  it('client - connect() with a wrong or missing token rejects with GOSSIP_ERR_UNAUTHORIZED', async () => {
    const d = await start(['--token', 'secret']);
    const wrong = client<string>(d.port, { codec: utf8Codec, token: 'wrong', reconnect: () => null });
    await expect(wrong.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_UNAUTHORIZED' });
    expect(wrong.state).toBe('closed');
    const none = client<string>(d.port, { codec: utf8Codec, reconnect: () => null });
    await expect(none.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_UNAUTHORIZED' });
    const right = client<string>(d.port, { codec: utf8Codec, token: 'secret' });
    await right.connect();
    expect((await right.publish('k', 'v')).status).toBe('accepted');
  });

  it('client - gossips:// with the CA and servername connects, publishes and receives', async () => {
    const d = await start(['--tls-cert', cert, '--tls-key', key]);
    const address = `gossips://127.0.0.1:${d.port}`;
    const a = client<string>(d.port, { address, codec: utf8Codec, tls: { ca, servername: 'localhost' } });
    const view = new GossipState(a);
    await a.connect();
    const b = client<string>(d.port, { address, codec: utf8Codec, tls: { ca, servername: 'localhost' }, since: 'now' });
    await b.connect();
    const r = await b.publish('secure', 'yes');
    expect(r).toMatchObject({ status: 'accepted' });
    await until(view, 'change', () => view.get('secure') === 'yes');
    expect(await b.fetch('secure')).toMatchObject([{ id: 'secure', found: true, value: 'yes', ts: r.ts }]);
  });

  it('client - gossips:// without the CA is refused by certificate verification', async () => {
    const d = await start(['--tls-cert', cert, '--tls-key', key]);
    const c = client<string>(d.port, {
      address: `gossips://127.0.0.1:${d.port}`,
      codec: utf8Codec,
      tls: { servername: 'localhost' },
      reconnect: () => null,
    });
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_IO' });
  });
});

describe('client - messages', () => {
  it('client - an emit reaches another client as transient, stays out of its state view and does not move lastTs', async () => {
    const d = await start();
    const a = client<string>(d.port, { codec: utf8Codec });
    const view = new GossipState(a);
    await a.connect();
    const b = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await b.connect();
    const v1 = await b.publish('k', 'v1');
    await until(view, 'change', () => view.get('k') === 'v1');
    const lastTs = a.lastTs;
    expect(lastTs).toBe(v1.ts);

    const presence = next<ClientMessage<string>>(a, 'message', (m) => m.id === 'presence');
    const k2 = next<ClientMessage<string>>(a, 'message', (m) => m.id === 'k' && m.transient);
    expect(b.emit('presence', 'online')).toBe(true);
    expect(b.emit('k', 'v2')).toBe(true);
    expect(await presence).toMatchObject({ id: 'presence', value: 'online', transient: true, replayed: false });
    expect(await k2).toMatchObject({ value: 'v2', transient: true });
    expect(view.has('presence')).toBe(false);
    expect(view.get('k')).toBe('v1');
    expect(a.lastTs).toBe(lastTs);
    // Never stored: a fetch and a replay still return v1.
    expect(await b.fetch(['k', 'presence'])).toMatchObject([
      { id: 'k', found: true, value: 'v1' },
      { id: 'presence', found: false },
    ]);
    expect(await fullReplay(d.port, { codec: utf8Codec })).toEqual({ k: { value: 'v1', ts: v1.ts } });
  });

  it('client - fetch returns values, tombstones and unknown ids from the server', async () => {
    const d = await start();
    const c = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await c.connect();
    const a = await c.publish('a', 'one');
    await c.publish('b', 'two');
    const del = await c.delete('b');
    expect(await c.fetch(['a', 'b', 'missing'])).toEqual([
      { id: 'a', found: true, ts: a.ts, deleted: false, value: 'one' },
      { id: 'b', found: true, ts: del.ts, deleted: true, value: undefined },
      { id: 'missing', found: false },
    ]);
    expect(await c.fetch('a')).toEqual([{ id: 'a', found: true, ts: a.ts, deleted: false, value: 'one' }]);
    expect(await c.fetch([])).toEqual([]);
  });

  it('client - a fetch of 10,000 ids of 95 bytes under --max-data 1000 is cut at the welcome maxFrameBytes: no drop, no publish re-sent (Q1)', async () => {
    // --max-data 1000 makes the largest frame 66,536 bytes; the 10,000 ids are about 970 KB.
    const d = await start(['--max-data', '1000']);
    const c = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    const disconnects: string[] = [];
    c.on('disconnect', (e) => disconnects.push(e.code));
    await c.connect();
    const ids = Array.from({ length: 10_000 }, (_, n) => `${'k'.repeat(90)}${String(n).padStart(5, '0')}`);
    const first = await c.publish(ids[0] as string, 'first');
    const last = await c.publish(ids[9_999] as string, 'last');
    const [results, during] = await Promise.all([c.fetch(ids), c.publish('during', 'x')]);
    expect(results.length).toBe(10_000);
    expect(results[0]).toEqual({ id: ids[0], found: true, ts: first.ts, deleted: false, value: 'first' });
    expect(results[9_999]).toEqual({ id: ids[9_999], found: true, ts: last.ts, deleted: false, value: 'last' });
    expect(results.filter((r) => r.found).length).toBe(2);
    expect(results.map((r) => r.id)).toEqual(ids);
    expect(during).toMatchObject({ status: 'accepted', retried: false });
    expect(disconnects).toEqual([]);
  });

  it('client - messages() yields the replay then live messages and ends when the client closes', async () => {
    const d = await start();
    const w = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await w.connect();
    const m1 = await w.publish('m1', 'one');
    const m2 = await w.publish('m2', 'two');
    const c = client<string>(d.port, { codec: utf8Codec });
    const iter = c.messages();
    await c.connect();
    const replayed = [(await iter.next()).value, (await iter.next()).value];
    expect(replayed.map((m) => [m?.id, m?.ts, m?.value, m?.replayed])).toEqual([
      ['m1', m1.ts, 'one', true],
      ['m2', m2.ts, 'two', true],
    ]);
    const m3 = await w.publish('m3', 'three');
    const gone = await w.delete('m1');
    const live = [(await iter.next()).value, (await iter.next()).value];
    expect(live.map((m) => [m?.id, m?.ts, m?.value, m?.deleted, m?.replayed])).toEqual([
      ['m3', m3.ts, 'three', false, false],
      ['m1', gone.ts, undefined, true, false],
    ]);
    const ending = iter.next();
    await c.close();
    expect(await ending).toEqual({ value: undefined, done: true });
  });

  it('client - for await over messages() stops at break, skipping transient messages when asked', async () => {
    const d = await start();
    const c = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await c.connect();
    const w = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await w.connect();
    const stream = c.messages({ transient: false });
    w.emit('ping', 'transient');
    await w.publish('p1', 'a');
    await w.publish('p2', 'b');
    const seen: string[] = [];
    for await (const m of stream) {
      seen.push(`${m.id}=${m.value}`);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(['p1=a', 'p2=b']);
    expect(c.listenerCount('message')).toBe(0);
  });

  it('client - json values published by one client decode in another', async () => {
    const d = await start();
    type Doc = { n: number; list: unknown[]; nested: { ok: boolean; text: string } };
    const a = client<Doc>(d.port, { codec: jsonCodec<Doc>(), since: 'now' });
    const b = client<Doc>(d.port, { codec: jsonCodec<Doc>() });
    const view = new GossipState(b);
    await Promise.all([a.connect(), b.connect()]);
    const doc: Doc = { n: 1.5, list: [1, 'x', null], nested: { ok: true, text: 'é ☃' } };
    await a.publish('doc', doc);
    await until(view, 'change', () => view.has('doc'));
    expect(view.get('doc')).toEqual(doc);
    expect(await b.fetch('doc')).toMatchObject([{ found: true, value: doc }]);
    // On the wire it is the JSON text.
    const text = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await text.connect();
    expect((await text.fetch('doc'))[0]?.value).toBe(JSON.stringify(doc));
  });

  it('client - msgpack values (bigints, bytes, dates) published by one client decode in another', async () => {
    const d = await start();
    type Doc = { big: bigint; small: number; bytes: Uint8Array; when: Date; s: string };
    const a = client<Doc>(d.port, { codec: msgpackCodec<Doc>(), since: 'now' });
    const b = client<Doc>(d.port, { codec: msgpackCodec<Doc>() });
    const view = new GossipState(b);
    await Promise.all([a.connect(), b.connect()]);
    const doc: Doc = { big: 2n ** 62n + 1n, small: 7, bytes: new Uint8Array([0, 1, 255]), when: new Date(0), s: 'x' };
    await a.publish('doc', doc);
    await until(view, 'change', () => view.has('doc'));
    const got = view.get('doc') as Doc;
    expect(got.big).toBe(doc.big);
    expect(got.small).toBe(7);
    expect([...got.bytes]).toEqual([0, 1, 255]);
    expect(got.when).toEqual(doc.when);
    expect(got.s).toBe('x');
    const [fetched] = await b.fetch('doc');
    expect(fetched?.value?.big).toBe(doc.big);
  });
});

describe('client - a GossipState made after connect()', () => {
  it('client - a GossipState made after connect() holds every id the server holds, then follows live changes, including a delete during its catch-up', async () => {
    const d = await start();
    const w = client<string>(d.port, { codec: utf8Codec, since: 'now' });
    await w.connect();
    const IDS = 300;
    await Promise.all(Array.from({ length: IDS }, (_, i) => w.publish(`k${i}`, `v${i}`)));
    await w.delete('k0');
    const gate = await catchUpGate(d.port);
    gates.push(gate);
    const c = client<string>(gate.port, { codec: utf8Codec });
    await c.connect();
    const live: ClientMessage<string>[] = [];
    c.on('message', (m) => live.push(m));

    const view = new GossipState(c);
    expect(view.catchingUp).toBe(true);
    // gossipd has sent the view its snapshot; the proxy holds it. Then k1 is deleted, k2 updated, k-new added.
    await gate.snapshotTaken;
    const del = await w.delete('k1');
    const upd = await w.publish('k2', 'updated');
    const add = await w.publish('k-new', 'added');
    await until(c, 'message', () => live.some((m) => m.id === 'k-new'));
    expect(live.map((m) => [m.id, m.ts, m.deleted])).toEqual([
      ['k1', del.ts, true],
      ['k2', upd.ts, false],
      ['k-new', add.ts, false],
    ]);
    expect(view.catchingUp).toBe(true);

    // The snapshot, older than those three, reaches the view: it does not bring k1 back or undo k2.
    const synced = next(view, 'synced');
    gate.release();
    await synced;
    expect(view.catchingUp).toBe(false);
    expect(view.has('k0')).toBe(false);
    expect(view.has('k1')).toBe(false);
    expect(view.entry('k2')).toEqual({ value: 'updated', ts: upd.ts });
    expect(view.size).toBe(IDS - 2 + 1);
    expect(snapshot(view)).toEqual(await fullReplay(d.port, { codec: utf8Codec }));
    // Its connection closed at its replay-done; the client's own got none of it.
    await gate.catchUpClosed;
    expect(live.every((m) => !m.replayed)).toBe(true);

    // Then it follows live changes.
    const k3 = await w.delete('k3');
    const k4 = await w.publish('k4', 'v4b');
    await until(view, 'change', () => !view.has('k3') && view.get('k4') === 'v4b');
    expect(k3.status).toBe('accepted');
    expect(view.entry('k4')).toEqual({ value: 'v4b', ts: k4.ts });
    expect(snapshot(view)).toEqual(await fullReplay(d.port, { codec: utf8Codec }));
  });
});
describe('client - offline queue', () => {
  it('client - publishes wait while the server is down, past maxQueue they fail with GOSSIP_ERR_QUEUE_FULL, and the queued ones land on restart', async () => {
    const d = await start();
    const port = d.port;
    const p = client<string>(port, { codec: utf8Codec, since: 'now', maxQueue: 5 });
    await p.connect();
    const down = next(p, 'disconnect');
    await d.stop();
    await down;
    const queued = [1, 2, 3, 4, 5].map((i) => p.publish(`q${i}`, `v${i}`));
    expect(p.queued).toBe(5);
    await expect(p.publish('q6', 'v6')).rejects.toMatchObject({ code: 'GOSSIP_ERR_QUEUE_FULL' });
    await restart(d.dataDir, port);
    const results = await Promise.all(queued);
    expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted', 'accepted']);
    expect(p.queued).toBe(0);
    const replay = await fullReplay(port, { codec: utf8Codec });
    expect(Object.fromEntries(Object.entries(replay).map(([id, e]) => [id, e.value]))).toEqual({
      q1: 'v1',
      q2: 'v2',
      q3: 'v3',
      q4: 'v4',
      q5: 'v5',
    });
    expect(results.map((r) => replay[`q${results.indexOf(r) + 1}`]?.ts)).toEqual(results.map((r) => r.ts));
  });
});

describe('e2e addresses', () => {
  it('e2e addresses - a client of two gossipd moves to the second when the first is SIGKILLed, and its state follows the log it reaches', async () => {
    const [a, b] = [await start(), await start()];
    const writer = h.keep(new GossipClient<string>({ address: `127.0.0.1:${b.port}`, codec: utf8Codec, since: 'now' }));
    await writer.connect();
    await writer.publish('on-b', 'b');
    const c = h.keep(
      new GossipClient<string>({
        address: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
        codec: utf8Codec,
        reconnect: () => 20,
      }),
    );
    const state = new GossipState(c);
    const addresses: string[] = [];
    c.on('connect', (info) => addresses.push(info.address));
    await c.connect();
    expect((await c.publish('on-a', 'a')).status).toBe('accepted');
    expect(state.toMap()).toEqual(new Map([['on-a', 'a']]));
    const resynced = new Promise((resolve) => c.once('resync', resolve));
    await a.kill();
    // another log (its own epoch): a resync, and the state is the second's
    expect(await resynced).toMatchObject({ reason: 'epoch' });
    await new Promise<void>((resolve) => {
      const check = () => (state.has('on-b') && !state.has('on-a') ? resolve() : setTimeout(check, 10));
      check();
    });
    expect(addresses).toEqual([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
    expect((await c.publish('after', 'x')).status).toBe('accepted');
    expect((await writer.fetch(['after']))[0]).toMatchObject({ found: true, value: 'x' });
  });
});
