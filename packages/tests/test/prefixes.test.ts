import {
  type AckFrame,
  AckStatus,
  type Epoch,
  type ErrorFrame,
  type Frame,
  FrameEncoder,
  FrameKind,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  now,
  type PrefixDoneFrame,
  type PrefixResyncFrame,
  type PrefixSpec,
  ResyncReason,
} from '@gossip/protocol';
import type { RawClient } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { LegacyClient } from '../src/legacy-client.js';
import { barrier, fatalError, harness, past } from './harness.js';
import { ackFor, live, prefixDone, publishMany, reqId, subscribe, unsubscribe } from './prefix-wire.js';

/*
 * Subscriptions by prefix (docs/PROTOCOL.md, B1 to B7; /work/shared/PRODUCT.md,
 * "Subscriptions by prefix") against a real gossipd, through the wire client of
 * @gossip/testing: what a connection receives is exactly what its prefixes match, once;
 * each prefix replays on its own, ending with its prefix-done, resynced on its own;
 * subscribe and unsubscribe change the set with acks; and what a client can make the
 * server do with them is bounded.
 */

const h = harness();
const KiB = 1024;
const MiB = 1024 * KiB;
/** The messages among `frames` (from index `from`) as [id, transient]. */
function received(frames: readonly Frame[], from = 0): [string, boolean][] {
  return frames
    .slice(from)
    .filter((f): f is MessageFrame => f.kind === FrameKind.Message)
    .map((m) => [m.id, (m.flags & MessageFlags.Transient) !== 0]);
}

/** The frames of one prefix's replay: from its prefix-resync or first replayed message up to its prefix-done. */
function replayOf(c: RawClient, prefix: string): { messages: MessageFrame[]; done: PrefixDoneFrame } {
  const end = c.frames.findIndex(prefixDone(prefix));
  const done = c.frames[end] as PrefixDoneFrame;
  const messages = c.frames
    .slice(0, end)
    .filter(
      (f): f is MessageFrame =>
        f.kind === FrameKind.Message && (f.flags & MessageFlags.Replayed) !== 0 && f.id.startsWith(prefix),
    );
  return { messages, done };
}

describe('prefixes - delivery', () => {
  it('prefixes - only ids under one of its prefixes reach a connection, once however many match, persisted and transient, echo rules unchanged', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    const prefixes = ['flags/', 'flags/beta/', 'presence/', 'é/'];
    const sub = await h.connect(d.port, { prefixes: live(...prefixes) });
    for (const p of prefixes) await sub.next(prefixDone(p));
    // Its own messages under its prefixes come back with echo on, not with echo off.
    const quiet = await h.connect(d.port, { prefixes: live('flags/'), echo: false });
    await quiet.next(prefixDone('flags/'));

    const ids = [
      'flags/checkout',
      'flags/beta/search',
      'flags',
      'flag/x',
      'flagsx/y',
      'presence/alice',
      'presence',
      'other/flags/x',
      'é/x',
      'é',
      'e\u0301/x',
      'flags/',
    ];
    const ts = past(now(), 10_000);
    for (const [k, id] of ids.entries()) {
      expect((await pub.publish(id, ts + BigInt(k), 'v')).status).toBe(AckStatus.Accepted);
      await pub.emit(id, ts + BigInt(k), 't', true);
    }
    await quiet.publish('flags/own', ts + 100n, 'mine');
    await quiet.emit('flags/own-emit', ts + 101n, 'mine', true);
    await barrier(sub);
    await barrier(quiet);

    const under = ids.filter((id) => prefixes.some((p) => id.startsWith(p)));
    expect(under).toEqual(['flags/checkout', 'flags/beta/search', 'presence/alice', 'é/x', 'flags/']);
    const want = under.flatMap((id): [string, boolean][] => [
      [id, false],
      [id, true],
    ]);
    expect(received(sub.frames)).toEqual([...want, ['flags/own', false], ['flags/own-emit', true]]);
    expect(received(quiet.frames)).toEqual(want.filter(([id]) => id.startsWith('flags/')));
  });

  it('prefixes - a legacy client and a native client that names no prefix still get everything', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    const scoped = await h.connect(d.port, { prefixes: live('a/') });
    await scoped.next(prefixDone('a/'));
    const plain = await h.live(d.port);
    const legacy = await LegacyClient.connect(d.port, 2n ** 63n - 1n);
    try {
      await legacy.replay();
      const ts = past(now(), 1000);
      const ids = ['a/1', 'b/1', 'c', 'a/2'];
      for (const [k, id] of ids.entries()) await pub.publish(id, ts + BigInt(k), 'v');
      await pub.emit('b/e', ts + 10n, 't', true);
      await barrier(plain);
      await barrier(scoped);
      expect(received(plain.frames)).toEqual([...ids.map((id): [string, boolean] => [id, false]), ['b/e', true]]);
      expect(received(scoped.frames)).toEqual([
        ['a/1', false],
        ['a/2', false],
      ]);
      // Plain frames carry no prefix frame: a client that knows nothing of prefixes works unchanged (B1).
      expect(plain.frames.some((f) => f.kind === FrameKind.PrefixDone || f.kind === FrameKind.PrefixResync)).toBe(
        false,
      );
      await legacy.message('b/e');
      expect(legacy.messages().map((m) => m.id)).toEqual([...ids, 'b/e']);
    } finally {
      legacy.close();
    }
  });
});

describe('prefixes - replay', () => {
  it('prefixes - the prefixes of a hello replay one after the other, each its own ids from its own since with its own count and prefix-done; a live-only one is done at once', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    const base = past(now(), 60_000);
    const at = (ms: number) => base + BigInt(ms) * 1_000_000n;
    for (let i = 0; i < 5; i++) {
      await pub.publish(`a/${i}`, at(i), `a${i}`);
      await pub.publish(`b/${i}`, at(10 + i), `b${i}`);
      await pub.publish(`c/${i}`, at(20 + i), `c${i}`);
    }
    // b/2 again, newer: replayed once, at its new place in ts order (R1).
    await pub.publish('b/2', at(30), 'b2 again');
    const epoch = pub.welcome.epoch;
    const c = await h.connect(d.port, {
      epoch,
      // With prefixes the hello's own since is not used (B2).
      since: MIN_TS,
      prefixes: [
        { prefix: 'b/', since: at(12) },
        { prefix: 'c/', since: null },
        { prefix: 'a/', since: at(3) },
      ],
    });
    await c.next(prefixDone('a/'));
    const order = c.frames.filter((f) => f.kind === FrameKind.PrefixDone).map((f) => (f as PrefixDoneFrame).prefix);
    expect(order).toEqual(['c/', 'b/', 'a/']);
    const b = replayOf(c, 'b/');
    expect(b.messages.map((m) => [m.id, m.ts])).toEqual([
      ['b/3', at(13)],
      ['b/4', at(14)],
      ['b/2', at(30)],
    ]);
    expect(b.done).toMatchObject({ count: 3, snapshot: false, newestTs: at(30) });
    const a = replayOf(c, 'a/');
    expect(a.messages.map((m) => m.id)).toEqual(['a/3', 'a/4']);
    expect(a.done).toMatchObject({ count: 2, snapshot: false });
    expect(replayOf(c, 'c/')).toMatchObject({ messages: [], done: { count: 0, snapshot: false, newestTs: at(30) } });
    // No replay-done and no resync: those are the frames of a hello without prefixes (R2, R3).
    expect(c.frames.some((f) => f.kind === FrameKind.ReplayDone || f.kind === FrameKind.Resync)).toBe(false);

    // A live message under a prefix now arrives live, after the prefix-done.
    await pub.publish('c/9', now(), 'live');
    const m = await c.next<MessageFrame>((f) => f.kind === FrameKind.Message && f.id === 'c/9');
    expect(m.flags).toBe(0);
  });

  it('prefixes - a resync for an epoch, in full or for the horizon snapshots only the ids under that prefix (B6)', async () => {
    const d = await h.start({
      args: ['--tombstone-retention', '1ms', '--segment-size', '4KiB', '--compact-threshold', '0'],
    });
    const pub = await h.live(d.port, { echo: false });
    const base = past(now(), 60_000);
    const at = (ms: number) => base + BigInt(ms) * 1_000_000n;
    const fill = Buffer.alloc(200, 0x66);
    for (let i = 0; i < 30; i++) {
      await pub.publish(`x/${i}`, at(i), fill);
      await pub.publish(`y/${i}`, at(i), fill);
    }
    await pub.publish('x/gone', at(100), 'soon deleted');
    const deleteAt = at(200);
    await pub.publish('x/gone', deleteAt, '');
    for (let i = 0; i < 30; i++) await pub.publish(`y/late-${i}`, at(300 + i), fill);
    const epoch = pub.welcome.epoch;
    const c = await h.connect(d.port, { epoch, prefixes: [] });

    /** Subscribes `prefix`; checks its replay and returns the ids replayed and the resync, if any. */
    const replay = async (prefix: string, since: bigint | null, e: Epoch | null, reason: ResyncReason | undefined) => {
      const from = c.frames.length;
      expect((await subscribe(c, prefix, since, e)).status).toBe(AckStatus.Accepted);
      const done = await c.next<PrefixDoneFrame>(prefixDone(prefix), from);
      const frames = c.frames.slice(from, c.frames.indexOf(done));
      const resync = frames.find((f): f is PrefixResyncFrame => f.kind === FrameKind.PrefixResync);
      const ids = frames.filter((f): f is MessageFrame => f.kind === FrameKind.Message).map((m) => m.id);
      expect(resync?.reason, prefix).toBe(reason);
      expect(resync?.prefix ?? prefix).toBe(prefix);
      expect(done.snapshot, prefix).toBe(reason !== undefined);
      expect(done.count, prefix).toBe(ids.length);
      expect(
        ids.filter((id) => !id.startsWith(prefix)),
        prefix,
      ).toEqual([]);
      expect(unsubscribeAck(await unsubscribe(c, prefix))).toBe(AckStatus.Accepted);
      return { ids: new Set(ids), resync };
    };
    const unsubscribeAck = (a: AckFrame) => a.status;
    const range = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}${i}`);

    // Everything, with no epoch, and no horizon yet: in full (R3).
    expect((await replay('x/1', MIN_TS, null, ResyncReason.Full)).ids).toEqual(new Set(['x/1', ...range('x/1', 10)]));
    expect((await replay('x/1', MIN_TS, epoch, undefined)).ids).toEqual(new Set(['x/1', ...range('x/1', 10)]));

    expect((await d.admin('/compact', 'POST')).status).toBe(200);
    const again = await h.connect(d.port, { epoch, prefixes: [] });
    expect(again.welcome.horizon).toBe(deleteAt);
    // At or before the horizon: a snapshot of x/ without the deleted id (it is in no snapshot).
    const horizon = await replay('x/', at(150), epoch, ResyncReason.Horizon);
    expect(horizon.resync?.horizon).toBe(deleteAt);
    expect(horizon.ids).toEqual(new Set(range('x/', 30)));
    // Another log's epoch: a snapshot of y/ alone, old and late ids.
    const other = await replay('y/', at(150), 'ffffffffffffffffffffffffffffffff', ResyncReason.Epoch);
    expect(other.ids).toEqual(new Set([...range('y/', 30), ...range('y/late-', 30)]));
    // After the horizon: a plain replay of the ids under the prefix from since.
    const plain = await replay('y/late-', deleteAt + 1n, epoch, undefined);
    expect(plain.ids).toEqual(new Set(range('y/late-', 30)));
  });

  it('prefixes - a prefix added during heavy publishing misses nothing: its replay and live messages hold the newest value of every id under it', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    const oracle = new Map<string, bigint>();
    let publishing = true;
    let published = 0;
    const publisher = (async () => {
      for (let round = 0; publishing || round < 20; round++) {
        const ts = now();
        const batch = Array.from({ length: 200 }, (_, k) => {
          const n = round * 200 + k;
          const id = n % 3 === 0 ? `noise/${n % 97}` : `seam/${n % 500}`;
          return pub.publish(id, ts + BigInt(k), `${n}`).then((a) => {
            if (a.status === AckStatus.Accepted && id.startsWith('seam/')) {
              if ((oracle.get(id) ?? MIN_TS) < ts + BigInt(k)) oracle.set(id, ts + BigInt(k));
            }
          });
        });
        await Promise.all(batch);
        published += batch.length;
      }
    })();
    while (published < 4_000) await new Promise((r) => setTimeout(r, 5));
    const c = await h.connect(d.port, { epoch: pub.welcome.epoch, prefixes: [] });
    const from = c.frames.length;
    const ack = await subscribe(c, 'seam/', MIN_TS, pub.welcome.epoch);
    expect(ack.status).toBe(AckStatus.Accepted);
    await c.next(prefixDone('seam/'), from);
    const doneAt = published;
    while (published < doneAt + 4_000) await new Promise((r) => setTimeout(r, 5));
    publishing = false;
    await publisher;
    await barrier(c);

    const held = new Map<string, bigint>();
    for (const f of c.frames) {
      if (f.kind !== FrameKind.Message) continue;
      expect(f.id.startsWith('seam/'), f.id).toBe(true);
      if ((held.get(f.id) ?? MIN_TS) < f.ts) held.set(f.id, f.ts);
    }
    expect(oracle.size).toBe(500);
    expect(held).toEqual(oracle);
  });

  it('prefixes - live messages under a prefix still replaying are held until its prefix-done, those another done prefix matches are not; unsubscribe stops a replay in flight and drops what it held', async () => {
    const d = await h.start({ args: ['--max-outbound', '4MiB'] });
    const pub = await h.live(d.port, { echo: false });
    // Far more than the socket buffers and the server's high water: the replay stalls while the client does not read.
    await publishMany(pub, 'big/', 400, 64 * KiB, past(now(), 5_000));
    await publishMany(pub, 'small/', 5, 100, past(now(), 5_000));
    await publishMany(pub, 'o/deep/', 3, 100, past(now(), 5_000));
    const epoch = pub.welcome.epoch;
    const c = await h.connect(d.port, { epoch, prefixes: live('o/') });
    await c.next(prefixDone('o/'));
    c.socket.pause();
    const enc = new FrameEncoder();
    const [bigReq, smallReq, deepReq, dropReq] = [1, 2, 3, 4].map(() => reqId()) as [number, number, number, number];
    c.send(enc.subscribe(bigReq, 'big/', MIN_TS, epoch).take());
    c.send(enc.subscribe(smallReq, 'small/', MIN_TS, epoch).take());
    c.send(enc.subscribe(deepReq, 'o/deep/', MIN_TS, epoch).take());
    await d.quiet();
    // big/ is replaying (stalled), small/ and o/deep/ wait their turn.
    const t = now();
    await pub.publish('big/live', t, 'held, then dropped');
    await pub.publish('small/live', t + 1n, 'held until small/ is done');
    await pub.publish('o/deep/live', t + 2n, 'o/ is done: at once');
    c.send(enc.unsubscribe(dropReq, 'big/').take());
    await d.quiet();
    c.socket.resume();
    await c.next(prefixDone('o/deep/'));
    await barrier(c);

    const index = (match: (f: Frame) => boolean) => c.frames.findIndex(match);
    // The live copy: a message stored before a prefix's replay is planned comes in the replay too (B5).
    const message = (id: string) => (f: Frame) =>
      f.kind === FrameKind.Message && f.id === id && (f.flags & MessageFlags.Replayed) === 0;
    expect(index(prefixDone('big/'))).toBe(-1);
    expect(index(message('big/live'))).toBe(-1);
    const dropAck = index(ackFor(dropReq));
    expect((c.frames[dropAck] as AckFrame).status).toBe(AckStatus.Accepted);
    // Nothing of big/ after the unsubscribe's ack; only part of its replay before it.
    expect(c.frames.slice(dropAck).some((f) => f.kind === FrameKind.Message && f.id.startsWith('big/'))).toBe(false);
    const bigReplayed = c.frames.filter((f) => f.kind === FrameKind.Message && f.id.startsWith('big/')).length;
    expect(bigReplayed).toBeGreaterThan(0);
    expect(bigReplayed).toBeLessThan(400);
    // o/deep/live went at once (o/ is done): before small/'s replay, let alone o/deep/'s.
    expect(index(message('o/deep/live'))).toBeLessThan(index(prefixDone('small/')));
    expect(index(message('o/deep/live'))).toBeLessThan(index(prefixDone('o/deep/')));
    // small/live waited for small/'s prefix-done, its replay complete before it.
    expect(index(message('small/live'))).toBeGreaterThan(index(prefixDone('small/')));
    // Their replays were planned after the live ones were stored: those are replayed too.
    expect(replayOf(c, 'small/').done.count).toBe(6);
    expect(replayOf(c, 'o/deep/').done.count).toBe(4);
  });
});

describe('prefixes - subscribe and unsubscribe', () => {
  it('prefixes - subscribe and unsubscribe are acked; after the unsubscribe ack nothing comes for that prefix, and without prefixes the connection is silent until it subscribes', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    const c = await h.connect(d.port, { prefixes: live('a/', 'b/') });
    await c.next(prefixDone('b/'));
    const epoch = c.welcome.epoch;
    const ts = past(now(), 1000);
    await pub.publish('a/1', ts, 'v');
    await pub.publish('b/1', ts + 1n, 'v');
    expect((await unsubscribe(c, 'a/')).status).toBe(AckStatus.Accepted);
    const afterA = c.frames.length;
    await pub.publish('a/2', ts + 2n, 'v');
    await pub.publish('b/2', ts + 3n, 'v');
    await barrier(c);
    expect(received(c.frames, afterA)).toEqual([['b/2', false]]);

    expect((await unsubscribe(c, 'b/')).status).toBe(AckStatus.Accepted);
    const silent = c.frames.length;
    await pub.publish('a/3', ts + 4n, 'v');
    await pub.publish('b/3', ts + 5n, 'v');
    await pub.emit('b/e', ts + 6n, 'v', true);
    await barrier(c);
    expect(received(c.frames, silent)).toEqual([]);

    // Subscribing again replays from its since, then live.
    const again = c.frames.length;
    const ack = await subscribe(c, 'b/', ts + 3n, epoch);
    expect(ack).toMatchObject({ status: AckStatus.Accepted, code: null, durability: 0 });
    const done = await c.next<PrefixDoneFrame>(prefixDone('b/'), again);
    expect(done).toMatchObject({ count: 2, snapshot: false });
    expect(received(c.frames, again)).toEqual([
      ['b/2', false],
      ['b/3', false],
    ]);
    await pub.publish('b/4', ts + 7n, 'v');
    await c.next((f) => f.kind === FrameKind.Message && f.id === 'b/4');

    // A hello without prefixes holds "": unsubscribing it leaves nothing.
    const plain = await h.live(d.port);
    expect((await unsubscribe(plain, '')).status).toBe(AckStatus.Accepted);
    const quiet = plain.frames.length;
    await pub.publish('z', ts + 8n, 'v');
    await barrier(plain);
    expect(received(plain.frames, quiet)).toEqual([]);
    expect((await subscribe(plain, 'z', null, null)).status).toBe(AckStatus.Accepted);
    await plain.next(prefixDone('z'));
    await pub.publish('z', ts + 9n, 'v');
    await plain.next((f) => f.kind === FrameKind.Message && f.id === 'z');
  });

  it('prefixes - too many, too long, held or not held prefixes get error acks with their codes; in a hello they are fatal', async () => {
    const d = await h.start({ args: ['--max-prefixes', '3'] });
    const c = await h.connect(d.port, { prefixes: live('a') });
    expect(c.welcome).toMatchObject({ maxPrefixes: 3, maxPrefixBytes: 256 });
    await c.next(prefixDone('a'));
    const codes = async (send: () => Promise<AckFrame>) => (await send()).code;
    expect(await codes(() => subscribe(c, 'a', null, null))).toBe('GOSSIP_ERR_ALREADY_SUBSCRIBED');
    expect(await codes(() => subscribe(c, 'x'.repeat(257), null, null))).toBe('GOSSIP_ERR_PREFIX_TOO_LONG');
    expect(await codes(() => subscribe(c, 'é'.repeat(128), null, null))).toBe(null);
    expect(await codes(() => subscribe(c, '', null, null))).toBe(null);
    expect(await codes(() => subscribe(c, 'b', null, null))).toBe('GOSSIP_ERR_TOO_MANY_PREFIXES');
    expect(await codes(() => unsubscribe(c, 'b'))).toBe('GOSSIP_ERR_NOT_SUBSCRIBED');
    expect(await codes(() => unsubscribe(c, 'x'.repeat(257)))).toBe('GOSSIP_ERR_PREFIX_TOO_LONG');
    expect(await codes(() => unsubscribe(c, 'a'))).toBe(null);
    expect(await codes(() => subscribe(c, 'b', null, null))).toBe(null);
    expect(c.isClosed).toBe(false);

    const hello = async (prefixes: PrefixSpec[]) => {
      const r = await h.open(d.port);
      r.send(new FrameEncoder().hello({ prefixes }).take());
      const e: ErrorFrame = await fatalError(r);
      expect(r.frames.filter((f) => f.kind === FrameKind.Welcome)).toEqual([]);
      return e.code;
    };
    expect(await hello(live('a', 'b', 'c', 'd'))).toBe('GOSSIP_ERR_TOO_MANY_PREFIXES');
    expect(await hello(live('a', 'y'.repeat(257)))).toBe('GOSSIP_ERR_PREFIX_TOO_LONG');
    expect(await hello(live('a', 'b', 'a'))).toBe('GOSSIP_ERR_ALREADY_SUBSCRIBED');
    // Exactly the limits is fine.
    const full = await h.connect(d.port, { prefixes: live('a', 'b', 'é'.repeat(128)) });
    await full.next(prefixDone('é'.repeat(128)));
  });
});

describe('prefixes - bounds', () => {
  it('prefixes - a client that never reads and loops subscribe and unsubscribe of "" on a large store holds gossipd to about --max-outbound of store reads and memory', async () => {
    const maxOutbound = 8 * MiB;
    const d = await h.start({ args: ['--max-outbound', '8MiB'] });
    const pub = await h.live(d.port, { echo: false });
    // 64 MiB under one prefix: each loop could read all of it.
    for (let k = 0; k < 4; k++) await publishMany(pub, `k${k}/`, 256, 64 * KiB, past(now(), 5_000));
    const epoch = pub.welcome.epoch;
    const attacker = await h.connect(d.port, { prefixes: [] });
    attacker.socket.pause();
    const readBefore = await d.metric('gossip_replay_read_bytes_total');
    const before = await d.memory();
    const enc = new FrameEncoder();
    const loops = 400;
    let lastReqId = 0;
    for (let k = 0; k < loops; k++) {
      enc.subscribe(reqId(), '', MIN_TS, epoch);
      lastReqId = reqId();
      enc.unsubscribe(lastReqId, '');
      if (k % 20 === 19) {
        attacker.send(enc.take());
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    attacker.send(enc.take());
    await d.quiet();
    const read = (await d.metric('gossip_replay_read_bytes_total')) - readBefore;
    const after = await d.memory();
    console.log(
      `prefix loop: ${loops} subscribe/unsubscribe pairs read ${(read / MiB).toFixed(1)} MiB from the store; ` +
        `RSS ${(before.rss / MiB).toFixed(0)} → ${(after.rss / MiB).toFixed(0)} MiB, peak ${(after.peak / MiB).toFixed(0)} MiB`,
    );
    // Unbounded it would be a batch or more per loop (400 MiB and up); the socket's buffers take a few MiB besides the cap.
    expect(read).toBeLessThan(2 * maxOutbound);
    expect(after.peak - before.rss, 'peak RSS growth').toBeLessThan(4 * maxOutbound);
    expect(d.child.exitCode).toBeNull();

    // Another client is served meanwhile, and the attacker, reading again, gets its acks.
    const other = await h.connect(d.port, { epoch, prefixes: [{ prefix: 'k1/', since: MIN_TS }] });
    await other.next(prefixDone('k1/'));
    // Nor was it dropped: the replays waited for it rather than queue past --max-outbound.
    attacker.socket.resume();
    const last = await attacker.next(
      (f) => (f.kind === FrameKind.Ack && f.reqId === lastReqId) || f.kind === FrameKind.Error,
    );
    expect(last.kind === FrameKind.Error ? last.code : 'acked').toBe('acked');
  });
});
