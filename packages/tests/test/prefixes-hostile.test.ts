import {
  type AckFrame,
  AckStatus,
  type Epoch,
  type Frame,
  FrameEncoder,
  FrameKind,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  now,
} from '@gossip/protocol';
import type { Gossipd, RawClient } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { barrier, fatalError, harness, past } from './harness.js';
import { prefixDone, publishMany, reqId } from './prefix-wire.js';

/*
 * Prefix subscriptions (docs/PROTOCOL.md, B1 to B7) against a hostile client of a real
 * gossipd: what one connection can make the server hold, walk or leave behind stays
 * bounded, and what it is sent stays exact.
 */

const h = harness();
const KiB = 1024;
const MiB = 1024 * KiB;
const isAck = (f: Frame): f is AckFrame => f.kind === FrameKind.Ack;

/**
 * A subscriber whose replay of `big/` stalls (it does not read; the store holds far more
 * than the server's high water and the socket buffers) and whose `w/` waits its turn:
 * live messages under either are held for it (B5).
 */
async function stalledSubscriber(d: Gossipd, pub: RawClient): Promise<{ c: RawClient; epoch: Epoch }> {
  await publishMany(pub, 'big/', 400, 64 * KiB, past(now(), 5_000));
  const epoch = pub.welcome.epoch;
  const c = await h.connect(d.port, {
    epoch,
    prefixes: [
      { prefix: 'big/', since: MIN_TS },
      { prefix: 'w/', since: MIN_TS },
    ],
  });
  c.socket.pause();
  await d.quiet();
  return { c, epoch };
}

/**
 * Emits `count` tiny transient messages alternating between `big/` and `w/`, so that each
 * is held on its own (its neighbours were matched by the other prefix); returns their ids.
 */
async function emitAlternating(pub: RawClient, count: number): Promise<string[]> {
  const enc = new FrameEncoder({ slabBytes: MiB });
  const ids: string[] = [];
  const ts = now();
  const empty = Buffer.alloc(0);
  for (let k = 0; k < count; k++) {
    const id = k % 2 === 0 ? `big/e${k}` : `w/e${k}`;
    ids.push(id);
    enc.emit(0, id, ts, empty);
    // A tick of a bounded size at a time, so the server's own per-tick arrays stay small.
    if (k % 10_000 === 9_999) {
      pub.send(enc.take());
      await barrier(pub);
    }
  }
  pub.send(enc.take());
  await barrier(pub);
  return ids;
}

/** Polls the admin endpoint until gossipd counts `n` connections (it sees a close a moment after the client). */
async function connectionsBackTo(d: Gossipd, n: number): Promise<void> {
  for (let i = 0; i < 400; i++) if ((await d.metric('gossip_connections')) === n) return;
  throw new Error(`gossipd still counts ${await d.metric('gossip_connections')} connections, not ${n}`);
}

describe('prefixes hostile - held messages', () => {
  it('prefixes hostile - subscribe and unsubscribe loops beside many held messages cost each loop its own, and every held message still goes once, after its prefix-done', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    const { c } = await stalledSubscriber(d, pub);
    // Held for c: each its own entry, well within --max-outbound (64 MiB) with what they cost.
    const ids = await emitAlternating(pub, 150_000);
    await d.quiet();

    // Each loop drops and ends a prefix while 150 000 messages are held: walking them all
    // each time took gossipd minutes, the whole daemon stalled (every client).
    const loops = 10_000;
    const first = reqId();
    const enc = new FrameEncoder({ slabBytes: MiB });
    for (let k = 0; k < loops; k++) {
      enc.subscribe(reqId(), 'z/', null, null);
      enc.unsubscribe(reqId(), 'z/');
    }
    c.send(enc.take());
    // Another client is served once gossipd has read the loops.
    await d.quiet();
    await barrier(pub);
    expect(d.child.exitCode).toBeNull();

    c.socket.resume();
    await c.next(prefixDone('w/'));
    await barrier(c);
    expect(c.errorCode).toBeUndefined();
    const acks = c.frames.filter(isAck).filter((a) => a.reqId >= first);
    expect(acks.length).toBe(2 * loops);
    expect(acks.every((a) => a.status === AckStatus.Accepted)).toBe(true);
    expect(c.frames.filter(prefixDone('z/')).length).toBe(loops);

    // Every held message exactly once, live, in order, after its own prefix's prefix-done.
    const live = c.frames
      .map((f, at) => ({ f, at }))
      .filter(
        (x): x is { f: MessageFrame; at: number } =>
          x.f.kind === FrameKind.Message && (x.f.flags & MessageFlags.Transient) !== 0,
      );
    for (const prefix of ['big/', 'w/']) {
      const done = c.frames.findIndex(prefixDone(prefix));
      const mine = live.filter((x) => x.f.id.startsWith(prefix));
      expect(mine.map((x) => x.f.id)).toEqual(ids.filter((id) => id.startsWith(prefix)));
      expect(mine.every((x) => x.at > done)).toBe(true);
    }
  });

  it('prefixes hostile - tiny messages held one by one count what they cost against --max-outbound: the subscriber is dropped as a slow consumer, not kept at many times the cap', async () => {
    const maxOutbound = 16 * MiB;
    const d = await h.start({ args: ['--max-outbound', '16MiB'] });
    const pub = await h.live(d.port, { echo: false });
    const { c } = await stalledSubscriber(d, pub);
    const before = await d.memory();
    // About 6 MB of frames: with the replay's own queue, under the cap by bytes alone; in
    // entries, their copies and lists, many times it.
    await emitAlternating(pub, 200_000);
    await d.quiet();
    const after = await d.memory();
    console.log(
      `200 000 held entries: RSS ${(before.rss / MiB).toFixed(0)} → ${(after.rss / MiB).toFixed(0)} MiB, ` +
        `peak ${(after.peak / MiB).toFixed(0)} MiB`,
    );
    c.socket.resume();
    // Kept, it would read its replays to the end.
    const end = await c.next((f) => f.kind === FrameKind.Error || prefixDone('w/')(f));
    expect(end.kind === FrameKind.Error ? end.code : 'kept to the end').toBe('GOSSIP_ERR_SLOW_CONSUMER');
    expect(after.rss - before.rss, 'RSS growth').toBeLessThan(4 * maxOutbound);
    expect(await d.metric('gossip_prefixes')).toBe(0);
  });
});

describe('prefixes hostile - what a connection leaves behind', () => {
  it('prefixes hostile - closed mid-replay, dropped mid-replay, unsubscribed in loops, scoped during its hello replay or dropped as a slow consumer: gossip_prefixes is back to 0 once they leave', async () => {
    const d = await h.start({ args: ['--max-outbound', '8MiB', '--max-prefixes', '8'] });
    const pub = await h.live(d.port, { echo: false });
    await publishMany(pub, 'big/', 300, 64 * KiB, past(now(), 5_000));
    const epoch = pub.welcome.epoch;
    const enc = new FrameEncoder();

    // Stalled replays, then closed by the client.
    const a = await h.connect(d.port, {
      epoch,
      prefixes: [
        { prefix: 'big/', since: MIN_TS },
        { prefix: '', since: null },
        { prefix: 'b', since: MIN_TS },
      ],
    });
    a.socket.pause();
    // Subscribe and unsubscribe in a loop, the same prefix again while its dropped replay still reads.
    const b = await h.connect(d.port, { prefixes: [] });
    b.socket.pause();
    for (let k = 0; k < 200; k++) {
      enc.subscribe(reqId(), 'big/', MIN_TS, epoch);
      enc.unsubscribe(reqId(), 'big/');
    }
    for (let k = 0; k < 7; k++) enc.subscribe(reqId(), `big/${k}`, MIN_TS, null);
    b.send(enc.take());
    // A hello without prefixes scoped during its replay: "" joins the index with the others.
    const s = await h.connect(d.port, { since: MIN_TS });
    s.socket.pause();
    s.send(enc.subscribe(reqId(), 'x', MIN_TS, null).take());
    s.send(enc.unsubscribe(reqId(), '').take());
    s.send(enc.subscribe(reqId(), '', MIN_TS, epoch).take());
    await d.quiet();
    expect(await d.metric('gossip_prefixes')).toBe(3 + 7 + 2);
    // One that lets held messages pile up is dropped by the server.
    const slow = await h.connect(d.port, { epoch, prefixes: [{ prefix: 'big/', since: MIN_TS }] });
    slow.socket.pause();
    await d.quiet();
    await pub.publish('big/x', now(), Buffer.alloc(4 * MiB, 0x62));
    await d.quiet();
    await pub.publish('big/y', now(), Buffer.alloc(4 * MiB, 0x62));
    slow.socket.resume();
    expect((await fatalError(slow)).code).toBe('GOSSIP_ERR_SLOW_CONSUMER');

    a.close();
    b.close();
    s.close();
    await connectionsBackTo(d, 1);
    expect(await d.metric('gossip_prefixes')).toBe(0);
    expect(d.child.exitCode).toBeNull();
  });
});
