import {
  type AckFrame,
  AckStatus,
  Durability,
  FrameKind,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  now,
  type ReplayDoneFrame,
  ResyncReason,
} from '@gossip/protocol';
import type { RawClient } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { barrier, harness, isMessage, messageFor, past, rows } from './harness.js';

// End-to-end checks of the semantics contract (/work/shared/PRODUCT.md, "Semantics")
// against a real gossipd process.

const h = harness();

describe('publish', () => {
  it('publish - an accepted publish is acked as written and broadcast to every client', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const b = await h.live(d.port);
    const ts = now();
    const ack = await a.publish('k', ts, 'v1');
    expect(ack).toMatchObject({ status: AckStatus.Accepted, durability: Durability.Written, code: null });
    const m = await b.next<MessageFrame>(messageFor('k'));
    expect(rows([m])).toEqual([['k', ts, 'v1', 0]]);
    // Echo is on by default: the publisher gets its own message too, ahead of its ack.
    const own = await a.next<MessageFrame>(messageFor('k'));
    expect(a.frames.indexOf(own)).toBeLessThan(a.frames.indexOf(ack));
  });

  it.each([
    ['always', Durability.Synced],
    ['interval', Durability.Written],
    ['never', Durability.Written],
  ] as const)('publish - under --fsync %s the ack says durability %i', async (mode, durability) => {
    const d = await h.start({ args: ['--fsync', mode] });
    const a = await h.live(d.port);
    expect(await a.publish('k', now(), 'v1')).toMatchObject({ status: AckStatus.Accepted, durability });
  });

  it('publish - an equal or older ts is acked stale, not broadcast and not replayed', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const b = await h.live(d.port);
    const ts = now();
    await a.publish('k', ts, 'v1');
    await b.next(messageFor('k'));
    const from = b.frames.length;
    const fromA = a.frames.length;
    expect(await a.publish('k', ts, 'same ts')).toMatchObject({ status: AckStatus.Stale, durability: Durability.None });
    expect(await a.publish('k', ts - 1n, 'older')).toMatchObject({
      status: AckStatus.Stale,
      durability: Durability.None,
    });
    // Nothing was broadcast: the next message anyone gets is the marker.
    await a.publish('marker', now(), 'm');
    await b.next(messageFor('marker'), from);
    expect(b.messages(from).map((m) => m.id)).toEqual(['marker']);
    expect(a.messages(fromA).map((m) => m.id)).toEqual(['marker']);

    const c = await h.connect(d.port, { since: ts - 1n });
    const { messages } = await c.replay();
    expect(rows(messages)).toEqual([
      ['k', ts, 'v1', MessageFlags.Replayed],
      ['marker', messages[1]?.ts, 'm', MessageFlags.Replayed],
    ]);
    expect(await c.fetch(['k'])).toMatchObject([{ id: 'k', found: true, ts }]);
  });
});

describe('tombstone', () => {
  it('tombstone - empty data is stored, broadcast, replayed and fetched, and follows the same LWW rule', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const b = await h.live(d.port);
    const t1 = past(now(), 10_000);
    const t2 = t1 + 1000n;
    await a.publish('k', t1, 'v1');
    expect(await a.publish('k', t2, '')).toMatchObject({ status: AckStatus.Accepted, durability: Durability.Written });
    const del = await b.next<MessageFrame>((f) => isMessage(f) && (f as MessageFrame).ts === t2);
    expect(rows([del])).toEqual([['k', t2, '', 0]]);

    // The tombstone stands against equal and older writes, deletes included.
    expect((await a.publish('k', t2, 'same ts')).status).toBe(AckStatus.Stale);
    expect((await a.publish('k', t2 - 1n, 'older')).status).toBe(AckStatus.Stale);
    expect((await a.publish('k', t2, '')).status).toBe(AckStatus.Stale);
    // A delete of an id already deleted at a newer ts is stale too.
    await a.publish('k2', t1, 'x');
    await a.publish('k2', t2, '');
    expect((await a.publish('k2', t1 + 1n, '')).status).toBe(AckStatus.Stale);

    const c = await h.connect(d.port, { since: t1 });
    const { messages, done } = await c.replay();
    expect(rows(messages)).toEqual([
      ['k', t2, '', MessageFlags.Replayed],
      ['k2', t2, '', MessageFlags.Replayed],
    ]);
    expect(done.count).toBe(2);
    const [entry] = await c.fetch(['k']);
    expect(entry).toMatchObject({ id: 'k', found: true, ts: t2 });
    expect(entry?.found && entry.data.length).toBe(0);

    // A newer write brings the id back.
    expect((await a.publish('k', t2 + 1n, 'v3')).status).toBe(AckStatus.Accepted);
    expect(await c.fetch(['k'])).toMatchObject([{ id: 'k', found: true, ts: t2 + 1n }]);
  });
});

describe('emit', () => {
  it('emit - delivered flagged transient, acked only for a non-zero reqId, never stored, replayed or fetched', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const b = await h.live(d.port);
    const t1 = past(now(), 10_000);
    const t2 = t1 + 1000n;
    await a.publish('k', t1, 'v1');
    await b.next(messageFor('k'));

    const ack = await a.emit('k', t2, 'v2', true);
    expect(ack).toMatchObject({ status: AckStatus.Accepted, durability: Durability.None, code: null });
    const m = await b.next<MessageFrame>(
      (f) => isMessage(f) && ((f as MessageFrame).flags & MessageFlags.Transient) !== 0,
    );
    expect(rows([m])).toEqual([['k', t2, 'v2', MessageFlags.Transient]]);

    // An emit is never stale: an older ts is forwarded as well.
    expect((await a.emit('k', t1 - 5n, 'old', true))?.status).toBe(AckStatus.Accepted);

    // reqId 0: forwarded, no ack. The pong comes after anything the emit would have caused.
    const from = a.frames.length;
    await a.emit('k', t2 + 1n, 'v2b');
    await barrier(a);
    expect(a.frames.slice(from).filter((f) => f.kind === FrameKind.Ack)).toEqual([]);
    expect(rows(a.messages(from))).toEqual([['k', t2 + 1n, 'v2b', MessageFlags.Transient]]);

    // The pong's newest ts is that of the newest publish, not moved by the emits.
    expect((await a.ping()).newestTs).toBe(t1);

    const check = async (port: number) => {
      const c = await h.connect(port, { since: t1 });
      const { messages, done } = await c.replay();
      expect(rows(messages)).toEqual([['k', t1, 'v1', MessageFlags.Replayed]]);
      expect(done).toMatchObject({ count: 1, newestTs: t1 });
      expect(c.welcome.newestTs).toBe(t1);
      const [entry] = await c.fetch(['k']);
      expect(entry).toMatchObject({ id: 'k', found: true, ts: t1 });
      expect(entry?.found && Buffer.from(entry.data).toString()).toBe('v1');
    };
    await check(d.port);
    const d2 = await h.restart(d);
    await check(d2.port);
  });
});

describe('echo', () => {
  it('echo - with echo off a client does not get its own publishes and emits, others do', async () => {
    const d = await h.start();
    const quiet = await h.live(d.port, { echo: false });
    const other = await h.live(d.port);
    const ts = now();
    expect((await quiet.publish('p', ts, 'pub')).status).toBe(AckStatus.Accepted);
    expect((await quiet.emit('e', ts, 'emit', true))?.status).toBe(AckStatus.Accepted);
    await other.next(messageFor('p'));
    await other.next(messageFor('e'));
    // What the other client publishes still reaches the quiet one, and nothing before it.
    await other.publish('marker', now(), 'm');
    await quiet.next(messageFor('marker'));
    expect(quiet.messages().map((m) => m.id)).toEqual(['marker']);
  });
});

describe('replay', () => {
  it('replay - since is inclusive, only the newest per id, in ascending ts order, with count and newestTs', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const base = past(now(), 60_000);
    const at = (ms: number) => base + BigInt(ms) * 1_000_000n;
    // Published out of ts order, and "a" overwritten.
    await a.publish('x', at(30), 'x30');
    await a.publish('a', at(5), 'a5');
    await a.publish('y', at(10), 'y10');
    await a.publish('z', at(20), 'z20');
    await a.publish('a', at(40), 'a40');
    await a.publish('old', at(1), 'old1');

    const c = await h.connect(d.port, { since: at(10) });
    const { messages, done, resync } = await c.replay();
    expect(resync).toBeUndefined();
    expect(rows(messages)).toEqual([
      ['y', at(10), 'y10', MessageFlags.Replayed],
      ['z', at(20), 'z20', MessageFlags.Replayed],
      ['x', at(30), 'x30', MessageFlags.Replayed],
      ['a', at(40), 'a40', MessageFlags.Replayed],
    ]);
    expect(done).toMatchObject({ count: 4, newestTs: at(40), snapshot: false });
    expect(c.welcome.newestTs).toBe(at(40));

    // A since past everything: an empty replay that still says where the log is.
    const e = await h.connect(d.port, { since: at(41) });
    const empty = await e.replay();
    expect(empty.messages).toEqual([]);
    expect(empty.done).toMatchObject({ count: 0, newestTs: at(40), snapshot: false });
  });

  it('replay - a live-only hello gets replay-done with count 0 at once, then live messages', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const ts = now();
    await a.publish('before', ts, 'b');
    const c = await h.connect(d.port, { since: null });
    const done = await c.next<ReplayDoneFrame>((f) => f.kind === FrameKind.ReplayDone);
    expect(done).toMatchObject({ count: 0, newestTs: ts, snapshot: false });
    expect(c.frames.map((f) => f.kind)).toEqual([FrameKind.Welcome, FrameKind.ReplayDone]);
    await a.publish('after', now(), 'a');
    const m = await c.next<MessageFrame>(isMessage);
    expect(m).toMatchObject({ id: 'after', flags: 0 });
    expect(c.messages().map((x) => x.id)).toEqual(['after']);
  });

  it('replay - messages published while a replay runs arrive after replay-done and none is lost', async () => {
    const d = await h.start();
    const N = 20_000;
    const value = Buffer.alloc(1000, 0x61);
    const base = past(now(), 60_000);
    const loader = await h.live(d.port, { echo: false });
    for (let i = 0; i < N; i++) loader.enc.publish(i + 1, `id-${i}`, base + BigInt(i), value);
    let acked = 0;
    const all = loader.next((f) => f.kind === FrameKind.Ack && ++acked === N);
    loader.send(loader.enc.take());
    await all;
    expect(loader.frames.filter((f) => f.kind === FrameKind.Ack && f.status !== AckStatus.Accepted)).toEqual([]);

    // The reader takes its welcome, then stops reading: the server's replay of ~20 MB
    // stalls on back-pressure, so the publishes below land while it is in progress.
    const reader = await h.connect(d.port, { since: base });
    reader.socket.pause();
    const last = `id-${N - 1}`;
    const t = now();
    expect((await loader.publish('new', t, 'fresh')).status).toBe(AckStatus.Accepted);
    expect((await loader.publish(last, t + 1n, 'updated')).status).toBe(AckStatus.Accepted);
    reader.socket.resume();

    const { messages, done } = await reader.replay();
    const live = await reader.next<MessageFrame>((f) => isMessage(f) && (f as MessageFrame).id === last && !f.flags);
    const fresh = await reader.next<MessageFrame>(messageFor('new'));
    const doneAt = reader.frames.indexOf(done);
    expect(messages.every((m) => m.flags === MessageFlags.Replayed)).toBe(true);
    expect(reader.frames.indexOf(live)).toBeGreaterThan(doneAt);
    expect(reader.frames.indexOf(fresh)).toBeGreaterThan(doneAt);
    expect(rows([fresh, live])).toEqual([
      ['new', t, 'fresh', 0],
      [last, t + 1n, 'updated', 0],
    ]);
    // The replay was still running: the id updated meanwhile left it (its old value is
    // no longer current) and came on the live stream instead.
    expect(done.count).toBe(N - 1);
    const ids = new Set(messages.map((m) => m.id));
    for (let i = 0; i < N - 1; i++) expect(ids.has(`id-${i}`)).toBe(true);
    for (let i = 1; i < messages.length; i++)
      expect((messages[i] as MessageFrame).ts > (messages[i - 1] as MessageFrame).ts).toBe(true);
  });
});

describe('resync', () => {
  it('resync - a hello with another epoch gets resync reason epoch and a full snapshot', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const base = past(now(), 60_000);
    await a.publish('one', base, '1');
    await a.publish('two', base + 10n, '2');
    await a.publish('gone', base + 20n, '');
    const epoch = a.welcome.epoch;
    const other = epoch.startsWith('0') ? `1${epoch.slice(1)}` : `0${epoch.slice(1)}`;

    // With the right epoch, a since past "one" replays from there.
    const same = await h.connect(d.port, { since: base + 10n, epoch });
    const normal = await same.replay();
    expect(normal.resync).toBeUndefined();
    expect(normal.messages.map((m) => m.id)).toEqual(['two', 'gone']);
    expect(normal.done.snapshot).toBe(false);

    const c = await h.connect(d.port, { since: base + 10n, epoch: other });
    const { messages, resync, done } = await c.replay();
    expect(resync).toMatchObject({ reason: ResyncReason.Epoch });
    expect(c.frames[1]?.kind).toBe(FrameKind.Resync);
    expect(rows(messages)).toEqual([
      ['one', base, '1', MessageFlags.Replayed],
      ['two', base + 10n, '2', MessageFlags.Replayed],
      ['gone', base + 20n, '', MessageFlags.Replayed],
    ]);
    expect(done).toMatchObject({ snapshot: true, count: 3, newestTs: base + 20n });

    // A client that holds nothing (since -2^63, no epoch) gets a snapshot too, reason full;
    // with the server's epoch, the same since is a plain replay of everything.
    const fresh = await h.connect(d.port, { since: MIN_TS });
    const full = await fresh.replay();
    expect(full.resync).toMatchObject({ reason: ResyncReason.Full });
    expect(full.done).toMatchObject({ snapshot: true, count: 3 });
    const known = await h.connect(d.port, { since: MIN_TS, epoch });
    const everything = await known.replay();
    expect(everything.resync).toBeUndefined();
    expect(everything.done).toMatchObject({ snapshot: false, count: 3 });
  });

  it('resync - a since at or before the tombstone horizon gets resync reason horizon and a snapshot without the id', async () => {
    const d = await h.start({
      args: ['--tombstone-retention', '1ms', '--segment-size', '4KiB', '--compact-threshold', '0'],
    });
    const a = await h.live(d.port, { echo: false });
    // Timestamps well in the past, so the tombstone is past its 1 ms retention whatever the clock does.
    const base = past(now(), 60_000);
    const at = (ms: number) => base + BigInt(ms) * 1_000_000n;
    const fill = Buffer.alloc(200, 0x66);
    const publishAll = async (prefix: string, from: number, n: number) => {
      for (let i = 0; i < n; i++) expect((await a.publish(`${prefix}-${i}`, at(from + i), fill)).status).toBe(0);
    };
    await publishAll('early', 0, 40);
    await a.publish('gone', at(100), 'soon deleted');
    const deleteAt = at(200);
    expect((await a.publish('gone', deleteAt, '')).status).toBe(AckStatus.Accepted);
    await publishAll('late', 300, 40);

    const compact = await d.admin('/compact', 'POST');
    expect(compact.status).toBe(200);
    const c = await h.connect(d.port, { since: at(150), epoch: a.welcome.epoch });
    expect(c.welcome.horizon).toBe(deleteAt);
    const { messages, resync, done } = await c.replay();
    expect(resync).toMatchObject({ reason: ResyncReason.Horizon, horizon: deleteAt });
    const ids = messages.map((m) => m.id);
    expect(ids).not.toContain('gone');
    expect(ids).toHaveLength(80);
    expect(ids).toContain('early-0');
    expect(ids).toContain('late-39');
    expect(done).toMatchObject({ snapshot: true, count: 80 });

    // At the horizon is not enough either; just after it is a normal replay.
    const atHorizon = await h.connect(d.port, { since: deleteAt });
    expect((await atHorizon.replay()).resync).toMatchObject({ reason: ResyncReason.Horizon });
    const after = await h.connect(d.port, { since: deleteAt + 1n });
    const normal = await after.replay();
    expect(normal.resync).toBeUndefined();
    expect(normal.messages.map((m) => m.id)).toEqual(Array.from({ length: 40 }, (_, i) => `late-${i}`));
  });
});

describe('fetch', () => {
  it('fetch - found and missing ids, and more ids than --max-fetch-ids is an error ack', async () => {
    const d = await h.start({ args: ['--max-fetch-ids', '3'] });
    const a = await h.live(d.port);
    const ts = now();
    await a.publish('k', ts, 'v');
    await a.publish('del', ts + 1n, '');
    const entries = await a.fetch(['missing', 'k', 'del']);
    expect(entries).toMatchObject([
      { id: 'missing', found: false },
      { id: 'k', found: true, ts },
      { id: 'del', found: true, ts: ts + 1n },
    ]);
    expect(entries[1]?.found && Buffer.from(entries[1].data).toString()).toBe('v');
    expect(await a.fetch([])).toEqual([]);

    const error = await a.fetch(['a', 'b', 'c', 'd']).catch((e: { code?: string }) => e);
    expect(error).toMatchObject({ code: 'GOSSIP_ERR_TOO_MANY_IDS' });
    const ack = a.frames.findLast((f): f is AckFrame => f.kind === FrameKind.Ack) as AckFrame;
    expect(ack).toMatchObject({ status: AckStatus.Error, durability: Durability.None });
    // The connection stays.
    expect(await a.fetch(['k'])).toMatchObject([{ id: 'k', found: true }]);
    expect((await a.publish('k', now(), 'v2')).status).toBe(AckStatus.Accepted);
  });
});

describe('ping', () => {
  it('ping - the pong carries the newest persisted ts, not moved by emits', async () => {
    const d = await h.start();
    const a: RawClient = await h.live(d.port);
    expect((await a.ping()).newestTs).toBe(MIN_TS);
    const t1 = past(now(), 1000);
    await a.publish('k', t1, 'v');
    const pong = await a.ping();
    expect(pong.newestTs).toBe(t1);
    await a.emit('k', now(), 'transient', true);
    expect((await a.ping()).newestTs).toBe(t1);
    // An older publish of another id does not lower it.
    await a.publish('older', t1 - 100n, 'v');
    expect((await a.ping()).newestTs).toBe(t1);
  });
});
