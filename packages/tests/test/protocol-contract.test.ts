import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { GossipClient, utf8Codec } from '@gossip/client';
import {
  type AckFrame,
  AckStatus,
  Durability,
  decodeFrame,
  type FetchResultFrame,
  type Frame,
  FrameDecoder,
  FrameKind,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  now,
  type ReplayDoneFrame,
  ResyncReason,
} from '@gossip/protocol';
import { describe, expect, it } from 'vitest';
import { LegacyClient } from '../src/legacy-client.js';
import { barrier, fatalError, harness, messageFor, rows } from './harness.js';

/*
 * docs/PROTOCOL.md is the contract: a real gossipd held to what the page says an outside
 * implementer can count on. The session of "A session, byte by byte" is read from the
 * page itself and played against the server; the other tests hold the rules that the
 * frame layouts alone do not tell (A4, P3, P4, H3, H4, R4, E4, E5, Q1 to Q3, H5, K3).
 */

const h = harness();
const page = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const ZERO_EPOCH = '0'.repeat(32);

/** The lines of the page's session table: who sends them and their bytes. */
function session(): { dir: 'C→S' | 'S→C'; bytes: Buffer }[] {
  const start = page.indexOf('\n## A session, byte by byte\n');
  const end = page.indexOf('\n## ', start + 1);
  const text = page.slice(start, end);
  return [...text.matchAll(/^\| \d+ \| (C→S|S→C) \| .+ \| \d+ \| `([0-9a-f]+)` \|$/gm)].map((m) => ({
    dir: m[1] as 'C→S' | 'S→C',
    bytes: Buffer.from(m[2] as string, 'hex'),
  }));
}

/** A frame with its byte fields as hex, so frames compare by content whatever holds their bytes. */
function plain(frame: Frame): unknown {
  return JSON.parse(
    JSON.stringify(frame, (_k, v: unknown) =>
      typeof v === 'bigint'
        ? `${v}n`
        : v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer'
          ? Buffer.from((v as { data: number[] }).data).toString('hex')
          : v === undefined
            ? null
            : v,
    ),
  );
}

const isAck = (reqId: number) => (f: Frame) => f.kind === FrameKind.Ack && f.reqId === reqId;

describe('session', () => {
  it('session - gossipd answers the client lines of the page session with its server lines, the epoch aside', async () => {
    const lines = session();
    expect(lines.length).toBeGreaterThan(8);
    const d = await h.start();
    // The log the session starts from: what its snapshot replays.
    const setup = await h.live(d.port);
    for (const line of lines) {
      const f = decodeFrame(line.bytes);
      if (line.dir === 'S→C' && f.kind === FrameKind.Message && f.flags & MessageFlags.Replayed) {
        expect(await setup.publish(f.id, f.ts, f.data)).toMatchObject({ status: AckStatus.Accepted });
      }
    }
    setup.close();

    const c = await h.open(d.port);
    let at = 0;
    for (const line of lines) {
      const want = decodeFrame(line.bytes);
      if (line.dir === 'C→S') {
        c.send(line.bytes);
        continue;
      }
      const got = await c.next(() => true, at);
      at++;
      if (want.kind === FrameKind.Welcome && got.kind === FrameKind.Welcome) {
        expect(got.epoch).toMatch(/^[0-9a-f]{32}$/);
        expect(got.epoch).not.toBe(ZERO_EPOCH);
        want.epoch = got.epoch;
      }
      expect(plain(got), `line ${lines.indexOf(line) + 1}`).toEqual(plain(want));
    }
    // Nothing else came: the next frame is the answer to one more ping.
    c.send(c.enc.ping(0xfeed).take());
    expect(await c.next(() => true, at)).toEqual({ kind: FrameKind.Pong, nonce: 0xfeed, newestTs: expect.any(BigInt) });
  });
});

describe('ack and echo', () => {
  it('ack and echo - with echo on, the message of an accepted publish or an acked emit comes right before its ack (A4)', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    for (let n = 0; n < 10; n++) {
      const ack = await a.publish(`k${n}`, now(), 'v');
      expect(ack.status).toBe(AckStatus.Accepted);
      expect(a.frames[a.frames.indexOf(ack) - 1]).toMatchObject({ kind: FrameKind.Message, id: `k${n}`, flags: 0 });
    }
    const emitted = await a.emit('e', now(), 'x', true);
    expect(a.frames[a.frames.indexOf(emitted as AckFrame) - 1]).toMatchObject({
      kind: FrameKind.Message,
      id: 'e',
      flags: MessageFlags.Transient,
    });
    // Pipelined: each echo still comes before its ack.
    const acks = await Promise.all(Array.from({ length: 50 }, (_, n) => a.publish(`p${n}`, now(), 'v')));
    for (const [n, ack] of acks.entries()) {
      const echo = a.frames.findIndex((f) => f.kind === FrameKind.Message && f.id === `p${n}`);
      expect(echo).toBeGreaterThanOrEqual(0);
      expect(echo).toBeLessThan(a.frames.indexOf(ack));
    }
  });

  it('ack and echo - during its replay a connection gets the ack first and the echo after replay-done (A4)', async () => {
    const d = await h.start();
    const writer = await h.live(d.port);
    // A log larger than the pacing high water and the kernel buffers together: the replay
    // to a client that does not read cannot end before the publish is acked.
    const big = Buffer.alloc(256 * 1024, 0x61);
    for (let n = 0; n < 4; n++) {
      const acks = await Promise.all(Array.from({ length: 32 }, (_, k) => writer.publish(`big${n}-${k}`, now(), big)));
      expect(acks.every((x) => x.status === AckStatus.Accepted)).toBe(true);
    }
    const watcher = await h.live(d.port);
    const a = await h.open(d.port);
    a.enc.hello({ since: MIN_TS }).publish(1, 'mine', now(), Buffer.from('v'));
    a.send(a.enc.take());
    a.socket.pause();
    // The watcher has the message: the publish is stored and its ack queued for `a`.
    await watcher.next(messageFor('mine'));
    a.socket.resume();
    const echo = await a.next<MessageFrame>((f) => f.kind === FrameKind.Message && f.id === 'mine' && f.flags === 0);
    const done = a.frames.findIndex((f) => f.kind === FrameKind.ReplayDone);
    const ack = a.frames.findIndex(isAck(1));
    expect(a.frames[ack]).toMatchObject({ status: AckStatus.Accepted });
    expect(ack).toBeGreaterThanOrEqual(0);
    expect(ack).toBeLessThan(done);
    expect(done).toBeLessThan(a.frames.indexOf(echo));
  });
});

describe('reqId 0', () => {
  it('reqId 0 - a publish with reqId 0 gets exactly one ack, with reqId 0, like any other (P3)', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    a.send(a.enc.publish(0, 'k', now(), Buffer.from('v')).take());
    expect(await a.next(isAck(0))).toMatchObject({
      status: AckStatus.Accepted,
      durability: Durability.Written,
      code: null,
    });
    // A refused publish 0 and a refused emit 0 are both an error ack for reqId 0 (P2).
    a.send(a.enc.publish(0, 'k', MIN_TS, Buffer.from('v')).take());
    a.send(a.enc.emit(0, 'e', MIN_TS, Buffer.from('v')).take());
    await barrier(a);
    const acks = a.frames.filter(isAck(0));
    expect(acks.map((x) => (x as AckFrame).code)).toEqual([null, 'GOSSIP_ERR_TS_RESERVED', 'GOSSIP_ERR_TS_RESERVED']);
  });
});

describe('reserved ts', () => {
  it('reserved ts - a native publish, a native emit and a legacy M with ts -2^63 are refused and nothing is stored (P4, L6)', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const watcher = await h.live(d.port);
    const ts = now();
    await a.publish('k', ts, 'v');
    expect((await a.ping()).newestTs).toBe(ts);

    expect(await a.publish('reserved', MIN_TS, 'x')).toMatchObject({
      status: AckStatus.Error,
      durability: Durability.None,
      code: 'GOSSIP_ERR_TS_RESERVED',
    });
    expect(await a.emit('reserved', MIN_TS, 'x', true)).toMatchObject({
      status: AckStatus.Error,
      code: 'GOSSIP_ERR_TS_RESERVED',
    });
    const legacy = await LegacyClient.connect(d.port, ts);
    legacy.publish('reserved', MIN_TS, 'x');
    expect(await legacy.closedWithText()).toMatch(/^error: GOSSIP_ERR_TS_RESERVED: .+\n$/);

    // The connection stayed, and the log is as it was.
    expect((await a.ping()).newestTs).toBe(ts);
    expect(await a.fetch(['reserved'])).toEqual([{ id: 'reserved', found: false }]);
    await barrier(watcher);
    expect(watcher.messages().map((m) => m.id)).toEqual(['k']);
    expect(await d.metric('gossip_refused_total')).toBe(3);
  });
});

describe('hello', () => {
  it('hello - since -2^63 without an epoch gets resync full and everything; with the server epoch a plain replay of everything (H3)', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const ts = now();
    await a.publish('x', ts, 'v');
    await a.publish('y', ts + 1n, '');
    const want = [
      ['x', ts, 'v', MessageFlags.Replayed],
      ['y', ts + 1n, '', MessageFlags.Replayed],
    ];

    const fresh = await h.connect(d.port, { since: MIN_TS });
    const full = await fresh.replay();
    expect(full.resync).toMatchObject({ reason: ResyncReason.Full, horizon: null });
    expect(rows(full.messages)).toEqual(want);
    expect(full.done).toMatchObject({ snapshot: true, count: 2, newestTs: ts + 1n });

    const known = await h.connect(d.port, { since: MIN_TS, epoch: fresh.welcome.epoch });
    const plainReplay = await known.replay();
    expect(plainReplay.resync).toBeUndefined();
    expect(rows(plainReplay.messages)).toEqual(want);
    expect(plainReplay.done).toMatchObject({ snapshot: false, count: 2, newestTs: ts + 1n });
  });

  it('hello - the all-zero epoch is another log: with since it gets resync epoch and a full snapshot, live only nothing (H4)', async () => {
    const d = await h.start();
    const a = await h.live(d.port);
    const ts = now();
    await a.publish('x', ts, 'v');

    // A since after everything: still the whole snapshot, because the epoch is not the server's.
    const c = await h.connect(d.port, { since: ts + 1_000n, epoch: ZERO_EPOCH });
    const r = await c.replay();
    expect(r.resync).toMatchObject({ reason: ResyncReason.Epoch });
    expect(rows(r.messages)).toEqual([['x', ts, 'v', MessageFlags.Replayed]]);
    expect(r.done).toMatchObject({ snapshot: true, count: 1 });

    const live = await h.connect(d.port, { since: null, epoch: ZERO_EPOCH });
    const none = await live.replay();
    expect(none.resync).toBeUndefined();
    expect(none.done).toMatchObject({ snapshot: false, count: 0, newestTs: ts });
  });

  it('hello - with no flags a connection that sends no hello gets GOSSIP_ERR_HELLO_TIMEOUT after 5 s (H5)', async () => {
    const d = await h.start();
    const c = await h.open(d.port);
    const t0 = performance.now();
    expect((await fatalError(c)).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThan(4_500);
    expect(elapsed).toBeLessThan(9_000);
  });
});

describe('defaults', () => {
  it('defaults - gossipd documents 5 s hello, 60 s idle and 15 s ping, and its welcome carries --ping-interval and --max-fetch-ids (H5, K3, W1)', async () => {
    const help = await h.spawn(['--help']);
    expect(help.stdout).toMatch(/--hello-timeout .*\(default 5s\)/);
    expect(help.stdout).toMatch(/--idle-timeout .*\(default 60s\)/);
    expect(help.stdout).toMatch(/--ping-interval .*\(default 15s\)/);
    expect(help.stdout).toMatch(/--max-fetch-ids .*\(default 10000\)/);

    const d = await h.start();
    expect((await h.live(d.port)).welcome).toMatchObject({ pingIntervalMs: 15_000, maxFetchIds: 10_000 });
    const e = await h.start({ args: ['--max-fetch-ids', '3', '--ping-interval', '2s'] });
    expect((await h.live(e.port)).welcome).toMatchObject({ pingIntervalMs: 2_000, maxFetchIds: 3 });
  });
});

describe('replay-done', () => {
  it('replay-done - a live-only hello gets count 0 and the newest persisted ts when it was handled, -2^63 on an empty log (R4)', async () => {
    const d = await h.start();
    const first = await h.connect(d.port, { since: null });
    const empty = await first.replay();
    expect(first.welcome.newestTs).toBe(MIN_TS);
    expect(empty.messages).toEqual([]);
    expect(empty.done).toEqual({ kind: FrameKind.ReplayDone, snapshot: false, count: 0, newestTs: MIN_TS });

    const ts = now();
    await first.publish('k', ts, 'v');
    const c = await h.connect(d.port, { since: null });
    const r = await c.replay();
    expect(c.welcome.newestTs).toBe(ts);
    expect(r.resync).toBeUndefined();
    expect(r.done).toEqual({ kind: FrameKind.ReplayDone, snapshot: false, count: 0, newestTs: ts });
    // What is persisted after comes live, after the replay-done.
    await first.publish('k', ts + 1n, 'w');
    const m = await c.next<MessageFrame>(messageFor('k'));
    expect(m).toMatchObject({ flags: 0, ts: ts + 1n });
    expect(c.frames.indexOf(m)).toBeGreaterThan(c.frames.indexOf(r.done));
  });
});

describe('fetch', () => {
  it('fetch - the fetches of a connection are answered one at a time in the order they came (Q3)', async () => {
    const d = await h.start();
    const a = await h.live(d.port, { echo: false });
    const big = Buffer.alloc(700 * 1024, 0x62);
    const bigIds = Array.from({ length: 5 }, (_, n) => `big${n}`);
    for (const id of bigIds) await a.publish(id, now(), big);
    await a.publish('small', now(), 's');
    const from = a.frames.length;
    a.enc.fetch(101, bigIds).fetch(102, ['small']).fetch(103, ['small', 'big0', 'small']);
    a.send(a.enc.take());
    await a.next((f) => f.kind === FrameKind.FetchResult && f.reqId === 103 && !f.more, from);
    const results = a.frames.slice(from).filter((f): f is FetchResultFrame => f.kind === FrameKind.FetchResult);
    const order = results.map((f) => f.reqId);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    // About 1 MiB a frame: each 700 KiB value goes in a frame of its own (Q3).
    expect(order.filter((r) => r === 101).length).toBe(5);
    expect(results.flatMap((f) => f.entries.map((e) => `${f.reqId}:${e.id}`))).toEqual([
      ...bigIds.map((id) => `101:${id}`),
      '102:small',
      '103:small',
      '103:big0',
    ]);
  });

  it('fetch - past the welcome maxFetchIds the client splits a fetch; one result per requested id, repeats included (Q1, Q2)', async () => {
    const d = await h.start({ args: ['--max-fetch-ids', '3'] });
    const a = await h.live(d.port);
    const ts = now();
    for (const id of ['a', 'b', 'c', 'd', 'e']) await a.publish(id, ts, `v-${id}`);
    const client = new GossipClient<string>({ address: `127.0.0.1:${d.port}`, codec: utf8Codec, since: 'now' });
    await client.connect();
    try {
      const before = await d.metric('gossip_fetches_total');
      const ids = ['a', 'b', 'a', 'c', 'd', 'zz', 'e', 'b', 'a'];
      const results = await client.fetch(ids);
      expect(results.map((r) => [r.id, r.found, r.value])).toEqual(
        ids.map((id) => (id === 'zz' ? [id, false, undefined] : [id, true, `v-${id}`])),
      );
      // Six distinct ids at three a fetch: two fetches.
      expect((await d.metric('gossip_fetches_total')) - before).toBe(2);
    } finally {
      await client.close();
    }
  });
});

describe('close', () => {
  it('close - after an error frame gossipd ends its side and closes a peer that does not close about 2 s later (E4)', async () => {
    const d = await h.start();
    const socket = netConnect({ port: d.port, host: '127.0.0.1', allowHalfOpen: true });
    await once(socket, 'connect');
    try {
      const frames: Frame[] = [];
      const decoder = new FrameDecoder((f) => frames.push(f));
      socket.on('data', (c: Buffer) => decoder.push(c));
      socket.on('error', () => undefined);
      // Not once(): it rejects on the 'error' (a reset) that comes with the close.
      const closed = new Promise((resolve) => socket.once('close', resolve));
      const ended = once(socket, 'end');
      // An unknown frame kind before the hello: fatal.
      socket.write(Buffer.from('00000001ff', 'hex'));
      await ended;
      const endedAt = performance.now();
      expect(frames).toMatchObject([{ kind: FrameKind.Error, code: 'GOSSIP_ERR_UNKNOWN_FRAME' }]);
      // This side stays open and keeps writing: the server ignores it until it closes,
      // and then the kernel answers a write with a reset.
      const probe = setInterval(() => {
        if (!socket.destroyed) socket.write(Buffer.of(0));
      }, 100);
      await closed;
      clearInterval(probe);
      const elapsed = performance.now() - endedAt;
      expect(elapsed).toBeGreaterThan(1_500);
      expect(elapsed).toBeLessThan(6_000);
    } finally {
      socket.destroy();
    }
  });

  it('close - SIGTERM: the acks of the publishes read, then GOSSIP_ERR_SHUTTING_DOWN as the last frame; what was acked is in the log (E5)', async () => {
    const d = await h.start();
    const a = await h.live(d.port, { echo: false });
    const base = now();
    // Pipelined publishes with the signal among them: some are read before the stop, some may not be.
    for (let n = 0; n < 300; n++) a.send(a.enc.publish(n + 1, `k${n}`, base + BigInt(n), Buffer.from('v')).take());
    d.child.kill('SIGTERM');
    const error = await fatalError(a);
    expect(error.code).toBe('GOSSIP_ERR_SHUTTING_DOWN');
    expect(a.frames[a.frames.length - 1]).toBe(error);
    const acks = a.frames.filter((f): f is AckFrame => f.kind === FrameKind.Ack);
    expect(acks.filter((x) => x.status !== AckStatus.Accepted)).toEqual([]);
    expect(await d.exited).toEqual({ code: 0, signal: null });

    const d2 = await h.start({ dataDir: d.dataDir });
    const c = await h.connect(d2.port, { since: MIN_TS });
    const { messages, done } = await c.replay();
    expect(messages.map((m) => m.id).sort()).toEqual(acks.map((x) => `k${x.reqId - 1}`).sort());
    expect((done as ReplayDoneFrame).count).toBe(acks.length);
  });
});
