import { randomBytes } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import { FrameKind, MessageFlags, type MessageFrame, MIN_TS, now } from '@gossip/protocol';
import type { Gossipd, RawClient } from '@gossip/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  LegacyClient,
  type LegacyMessageEvent,
  legacyFrame,
  legacyHandshake,
  legacyPayload,
} from '../src/legacy-client.js';
import { fatalError, harness, isMessage, messageFor, past, rows } from './harness.js';

// The original gossip protocol served by gossipd beside the native one, on the same port
// (docs/PROTOCOL.md, "Legacy protocol"), checked with a client written from its
// description (src/legacy-client.ts) against a real gossipd process.

const h = harness();
const legacyClients: LegacyClient[] = [];
afterEach(() => {
  for (const c of legacyClients.splice(0)) c.close();
});

/** A since no message reaches: the replay is empty, so the client gets D and then the live stream. */
const LIVE = 2n ** 63n - 1n;

async function legacy(port: number, since = LIVE): Promise<LegacyClient> {
  const c = await LegacyClient.connect(port, since);
  legacyClients.push(c);
  return c;
}

/** A legacy client that has read its (empty) replay. */
async function legacyLive(port: number): Promise<LegacyClient> {
  const c = await legacy(port);
  await c.replay();
  return c;
}

async function openLegacy(port: number): Promise<LegacyClient> {
  const c = await LegacyClient.open(port);
  legacyClients.push(c);
  return c;
}

/** [kind, id, ts, data] of legacy messages. */
const legacyRows = (ms: LegacyMessageEvent[]) => ms.map((m) => [m.kind, m.id, m.ts, m.data.toString()]);

/** Waits until a native marker published after everything else reached `c`: what came before it has come. */
async function marker(pub: RawClient, ...subs: (RawClient | LegacyClient)[]): Promise<void> {
  const id = `marker/${randomBytes(4).toString('hex')}`;
  const ts = now();
  await pub.publish(id, ts, 'm');
  for (const s of subs) {
    if ('frames' in s) await s.next(messageFor(id));
    else await s.message(id);
  }
}

/** The one line the server wrote before closing: `error: CODE: message`. */
async function errorLine(c: LegacyClient): Promise<{ code: string; message: string }> {
  const text = await c.closedWithText();
  expect(text.endsWith('\n'), JSON.stringify(text)).toBe(true);
  expect(text.split('\n')).toHaveLength(2);
  const m = /^error: (GOSSIP_ERR_[A-Z0-9_]+): (.+)\n$/.exec(text);
  expect(m, JSON.stringify(text)).not.toBeNull();
  return { code: m?.[1] as string, message: m?.[2] as string };
}

describe('legacy handshake', () => {
  it('legacy handshake - GOSSIP and since on the native port are answered with GOSSIP\\n, then D on an empty log', async () => {
    const d = await h.start();
    const raw: Buffer[] = [];
    const c = await openLegacy(d.port);
    c.socket.on('data', (chunk: Buffer) => raw.push(chunk));
    c.send(legacyHandshake(MIN_TS));
    await c.welcome();
    const { messages } = await c.replay();
    expect(messages).toEqual([]);
    expect(Buffer.concat(raw).toString('latin1')).toBe('GOSSIP\nD');
    expect(c.text).toBe('');
    // A native client on the same port is served as ever.
    const n = await h.live(d.port);
    expect(n.welcome.kind).toBe(FrameKind.Welcome);
    expect(await d.metric('gossip_legacy_connections')).toBe(1);
    expect(await d.metric('gossip_connections')).toBe(2);
  });

  it('legacy handshake - the handshake may arrive a byte at a time', async () => {
    const d = await h.start();
    const c = await openLegacy(d.port);
    for (const byte of legacyHandshake(0n)) c.send(Buffer.of(byte));
    await c.welcome();
    await c.replay();
    expect(c.text).toBe('');
  });

  it('legacy handshake - a partial handshake gets one line GOSSIP_ERR_HELLO_TIMEOUT past --hello-timeout', async () => {
    const d = await h.start({ args: ['--hello-timeout', '200ms'] });
    const c = await openLegacy(d.port);
    c.send(Buffer.from('GOS'));
    expect((await errorLine(c)).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
    expect(c.welcomed).toBe(false);
  });

  it('legacy handshake - --hello-timeout runs from the connection, not from its first byte', async () => {
    // Native connections are the clock, so the test sets no timers: a silent one is closed
    // 300 ms after it connects (--hello-timeout), one that has read its replay-done 400 ms
    // after that (--idle-timeout). Times below are from the start.
    const d = await h.start({ args: ['--hello-timeout', '300ms', '--idle-timeout', '400ms'] });
    const helloTimeout = async () =>
      expect((await fatalError(await h.open(d.port))).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
    const idleTimeout = async () =>
      expect((await fatalError(await h.live(d.port))).code).toBe('GOSSIP_ERR_IDLE_TIMEOUT');
    const at600 = helloTimeout().then(helloTimeout);
    await idleTimeout();
    // 400: its handshake is due at 700.
    const c = await openLegacy(d.port);
    const at800 = idleTimeout();
    await at600;
    c.send(Buffer.from('G'));
    await at800;
    c.send(legacyHandshake(0n).subarray(1));
    // Complete only 400 ms after connecting: too late, though a timer started at the G
    // (due at 900) would have let it in.
    await expect(c.welcome()).rejects.toThrow(/GOSSIP_ERR_HELLO_TIMEOUT/);
    expect((await errorLine(c)).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
  });

  it('legacy handshake - the native connection lets go of the socket: an error on it is logged once', async () => {
    const d = await h.start({ args: ['--log-level', 'debug'] });
    const c = await legacyLive(d.port);
    c.socket.resetAndDestroy();
    await d.waitLog((l) => l.msg === 'socket error');
    // A line logged after it: every line the reset caused has been read by now.
    const bad = await h.open(d.port);
    bad.send(Buffer.from([0, 0, 0, 0]));
    await fatalError(bad);
    await d.waitLog((l) => l.msg === 'closing connection' && l.code === 'GOSSIP_ERR_MALFORMED_FRAME');
    expect(d.logs.filter((l) => l.msg === 'socket error')).toHaveLength(1);
  });

  it('legacy handshake - a stopping server ends a legacy connection with one line', async () => {
    const d = await h.start();
    const c = await legacyLive(d.port);
    expect((await d.stop()).code).toBe(0);
    expect((await errorLine(c)).code).toBe('GOSSIP_ERR_SHUTTING_DOWN');
  });
});

describe('legacy flows', () => {
  it('legacy flows - a native publish reaches a legacy subscriber tagged "=", or "z" when large and compressible', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const l = await legacyLive(d.port);
    const t = past(now(), 1000);

    await n.publish('small', t, 'v1');
    const small = await l.message('small');
    expect(small).toMatchObject({ kind: 'M', id: 'small', ts: t, tag: '=' });
    expect(small.payload.toString()).toBe('=v1');

    const text = Buffer.from('gossip '.repeat(1000));
    await n.publish('text', t + 1n, text);
    const zipped = await l.message('text');
    expect(zipped.tag).toBe('z');
    expect(zipped.data.equals(text)).toBe(true);
    expect(zipped.payload.length).toBeLessThan(text.length);

    // Random bytes do not deflate smaller: they go raw.
    const noise = randomBytes(4096);
    await n.publish('noise', t + 2n, noise);
    const raw = await l.message('noise');
    expect(raw.tag).toBe('=');
    expect(raw.data.equals(noise)).toBe(true);

    // A native tombstone goes out as "=" alone.
    await n.publish('small', t + 3n, '');
    const del = await l.message('small', 0, t + 3n);
    expect(del.payload.toString()).toBe('=');
    expect(del.data.length).toBe(0);
  });

  it('legacy flows - a legacy publish is stored without its tag and reaches native and legacy subscribers', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const other = await legacyLive(d.port);
    const l = await legacyLive(d.port);
    const t = past(now(), 1000);

    l.publish('k', t, 'v1');
    const m = await n.next<MessageFrame>(messageFor('k'));
    expect(rows([m])).toEqual([['k', t, 'v1', 0]]);
    expect(legacyRows([await other.message('k')])).toEqual([['M', 'k', t, 'v1']]);
    // The publisher gets its own message back, as from the original server.
    expect(legacyRows([await l.message('k')])).toEqual([['M', 'k', t, 'v1']]);
    const [entry] = await n.fetch(['k']);
    expect(entry?.found && Buffer.from(entry.data).toString()).toBe('v1');

    // A "z" payload is inflated before it is stored: natives see the data itself.
    const big = Buffer.from('{"flag":true} '.repeat(500));
    l.publish('z', t + 1n, big, 'z');
    const zm = await n.next<MessageFrame>(messageFor('z'));
    expect(Buffer.from(zm.data).equals(big)).toBe(true);
    const [zentry] = await n.fetch(['z']);
    expect(zentry?.found && Buffer.from(zentry.data).equals(big)).toBe(true);
    // ... and a legacy subscriber gets it back as the server chooses: here deflated again.
    const zl = await other.message('z');
    expect(zl.tag).toBe('z');
    expect(zl.data.equals(big)).toBe(true);

    // A small "z" payload is fine too, and goes back out raw.
    l.publish('zs', t + 2n, 'tiny', 'z');
    expect(Buffer.from((await n.next<MessageFrame>(messageFor('zs'))).data).toString()).toBe('tiny');
    expect((await other.message('zs')).payload.toString()).toBe('=tiny');
  });

  it('legacy flows - a legacy tombstone "=" reaches native clients as empty data and deletes the id', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const l = await legacyLive(d.port);
    const t = past(now(), 1000);
    await n.publish('k', t, 'v1');
    await l.message('k');

    l.send(legacyFrame('M', 'k', t + 1n, Buffer.from('=')));
    const del = await n.next<MessageFrame>((f) => isMessage(f) && (f as MessageFrame).ts === t + 1n);
    expect(rows([del])).toEqual([['k', t + 1n, '', 0]]);
    const [entry] = await n.fetch(['k']);
    expect(entry).toMatchObject({ id: 'k', found: true, ts: t + 1n });
    expect(entry?.found && entry.data.length).toBe(0);
    // A "z" payload that inflates to nothing is a tombstone as well.
    l.send(legacyFrame('M', 'k', t + 2n, Buffer.concat([Buffer.from('z'), deflateSync(Buffer.alloc(0))])));
    const del2 = await n.next<MessageFrame>((f) => isMessage(f) && (f as MessageFrame).ts === t + 2n);
    expect(del2.data.length).toBe(0);
  });

  it('legacy flows - a legacy emit reaches native clients as transient and legacy clients as S, and is never stored', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const other = await legacyLive(d.port);
    const l = await legacyLive(d.port);
    const t1 = past(now(), 10_000);
    const t2 = t1 + 1000n;
    l.publish('k', t1, 'v1');
    await n.next(messageFor('k'));

    l.emit('k', t2, 'v2');
    const m = await n.next<MessageFrame>(
      (f) => isMessage(f) && ((f as MessageFrame).flags & MessageFlags.Transient) !== 0,
    );
    expect(rows([m])).toEqual([['k', t2, 'v2', MessageFlags.Transient]]);
    expect(legacyRows([await other.next<LegacyMessageEvent>((e) => e.kind === 'S')])).toEqual([['S', 'k', t2, 'v2']]);

    // Never stored: fetch and both replays still give v1.
    const [entry] = await n.fetch(['k']);
    expect(entry).toMatchObject({ found: true, ts: t1 });
    const r = await legacy(d.port, t1);
    expect(legacyRows((await r.replay()).messages)).toEqual([['M', 'k', t1, 'v1']]);
    const c = await h.connect(d.port, { since: t1 });
    expect(rows((await c.replay()).messages)).toEqual([['k', t1, 'v1', MessageFlags.Replayed]]);
  });

  it('legacy flows - a native emit reaches legacy clients as S', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const l = await legacyLive(d.port);
    const t = now();
    await n.emit('presence/alice', t, 'here', true);
    const s = await l.message('presence/alice');
    expect(s).toMatchObject({ kind: 'S', ts: t, tag: '=' });
    expect(s.data.toString()).toBe('here');
  });

  it('legacy flows - a stale legacy publish is ignored without a word, and the connection stays', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const l = await legacyLive(d.port);
    const t = past(now(), 1000);
    l.publish('k', t, 'v1');
    await n.next(messageFor('k'));
    const from = n.frames.length;
    const lfrom = l.events.length;
    l.publish('k', t, 'same ts');
    l.publish('k', t - 1n, 'older');
    l.publish('after', t, 'a');
    // The legacy client's own later publish arrives: the stale ones were read, ignored, and nothing was sent.
    await n.next(messageFor('after'), from);
    expect(n.messages(from).map((m) => m.id)).toEqual(['after']);
    await l.message('after', lfrom);
    expect(l.messages(lfrom).map((m) => m.id)).toEqual(['after']);
    expect(l.isClosed).toBe(false);
    expect(l.text).toBe('');
    expect(await d.metric('gossip_publishes_stale_total')).toBe(2);
  });
});

describe('legacy replay', () => {
  it('legacy replay - the newest message per id with ts >= since in ascending ts, tombstones as "=", then D, then live', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    const base = past(now(), 60_000);
    const at = (ms: number) => base + BigInt(ms) * 1_000_000n;
    await n.publish('x', at(30), 'x30');
    await n.publish('a', at(5), 'a5');
    await n.publish('y', at(10), 'y10');
    await n.publish('z', at(20), 'z20');
    await n.publish('a', at(40), 'a40');
    await n.publish('old', at(1), 'old1');
    await n.publish('z', at(50), '');

    const l = await legacy(d.port, at(10));
    const { messages, done } = await l.replay();
    expect(legacyRows(messages)).toEqual([
      ['M', 'y', at(10), 'y10'],
      ['M', 'x', at(30), 'x30'],
      ['M', 'a', at(40), 'a40'],
      ['M', 'z', at(50), ''],
    ]);
    expect(messages.at(-1)?.payload.toString()).toBe('=');

    // After D, the live stream.
    await n.publish('live', now(), 'l');
    const live = await l.message('live');
    expect(l.events.indexOf(live)).toBeGreaterThan(done);
    expect(l.events.filter((e) => e.kind === 'D')).toHaveLength(1);

    // A since of -2^63 replays everything; there is no resync in this protocol.
    const all = await legacy(d.port, MIN_TS);
    expect((await all.replay()).messages.map((m) => m.id)).toEqual(['old', 'y', 'x', 'a', 'z', 'live']);
  });

  it('legacy replay - messages published and emitted during the replay are held and arrive after D', async () => {
    const d = await h.start();
    const n = await h.live(d.port);
    // A replay far larger than the socket buffers can hold: it cannot finish while the client does not read.
    const count = 64;
    const size = 1024 * 1024;
    const base = past(now(), 60_000);
    for (let i = 0; i < count; i++) {
      const data = randomBytes(size);
      data.writeUInt32BE(i, 0);
      await n.publish(`big/${i}`, base + BigInt(i), data);
    }
    const l = await legacy(d.port, MIN_TS);
    await l.message('big/0');
    l.pause();

    // Meanwhile: an emit and a publish, seen by a native client, so the server has handled both.
    const t = now();
    await n.emit('during/emit', t, 'transient', true);
    await n.publish('during/publish', t, 'persisted');
    await n.next(messageFor('during/emit'));
    await n.next(messageFor('during/publish'));
    // The replay had not finished when both were delivered: it counts its messages only at its end.
    expect(await d.metric('gossip_replayed_messages_total')).toBe(0);

    l.resume();
    const emitted = await l.message('during/emit');
    const published = await l.message('during/publish');
    const { messages, done } = await l.replay();
    expect(messages.map((m) => m.id)).toEqual(Array.from({ length: count }, (_, i) => `big/${i}`));
    for (const [i, m] of messages.entries()) {
      expect(m.data.length).toBe(size);
      expect(m.data.readUInt32BE(0)).toBe(i);
    }
    expect(emitted.kind).toBe('S');
    expect(l.events.indexOf(emitted)).toBeGreaterThan(done);
    expect(l.events.indexOf(published)).toBeGreaterThan(done);
    expect(l.text).toBe('');
    expect(await d.metric('gossip_replayed_messages_total')).toBe(count);
  });
});

describe('legacy bad input', () => {
  it('legacy bad input - each is answered with one line naming the problem and a close; other clients carry on', async () => {
    const d = await h.start({ args: ['--max-data', '64KiB'] });
    const n = await h.live(d.port);
    const sub = await legacyLive(d.port);
    const pub = await legacyLive(d.port);
    const t = past(now(), 1000);
    const u64 = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(v);
      return b;
    };
    const i64 = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(v);
      return b;
    };
    const maxData = 64 * 1024;
    const cases: { name: string; bytes: Buffer; code: string; handshake?: false }[] = [
      // Declared lengths are refused as soon as they are read: nothing is allocated or awaited.
      {
        name: 'an id length of 2^40',
        bytes: Buffer.concat([Buffer.from('M'), u64(2n ** 40n)]),
        code: 'GOSSIP_ERR_ID_TOO_LONG',
      },
      {
        name: 'an id length of 2^64-1',
        bytes: Buffer.concat([Buffer.from('M'), u64(2n ** 64n - 1n)]),
        code: 'GOSSIP_ERR_ID_TOO_LONG',
      },
      {
        name: 'an id of 257 bytes',
        bytes: legacyFrame('M', 'i'.repeat(257), t, Buffer.from('=x')),
        code: 'GOSSIP_ERR_ID_TOO_LONG',
      },
      { name: 'an empty id', bytes: legacyFrame('M', '', t, Buffer.from('=x')), code: 'GOSSIP_ERR_ID_EMPTY' },
      {
        name: 'an id that is not UTF-8',
        bytes: legacyFrame('M', Buffer.of(0x62, 0xff), t, Buffer.from('=x')),
        code: 'GOSSIP_ERR_ID_NOT_UTF8',
      },
      {
        name: 'a data length of 2^40',
        bytes: Buffer.concat([Buffer.from('M'), u64(5n), Buffer.from('bad/a'), i64(t), u64(2n ** 40n)]),
        code: 'GOSSIP_ERR_DATA_TOO_LARGE',
      },
      {
        name: 'raw data one byte over --max-data',
        bytes: legacyFrame('M', 'bad/b', t, legacyPayload(Buffer.alloc(maxData + 1, 1))),
        code: 'GOSSIP_ERR_DATA_TOO_LARGE',
      },
      { name: 'an unknown kind byte', bytes: Buffer.from('X'), code: 'GOSSIP_ERR_UNKNOWN_FRAME' },
      { name: 'a D from the client', bytes: Buffer.from('D'), code: 'GOSSIP_ERR_UNEXPECTED_FRAME' },
      {
        name: 'a z payload that is not zlib',
        bytes: legacyFrame('M', 'bad/c', t, Buffer.from('znot zlib at all')),
        code: 'GOSSIP_ERR_MALFORMED_FRAME',
      },
      {
        name: 'a truncated z payload',
        bytes: legacyFrame('M', 'bad/d', t, legacyPayload('x'.repeat(5000), 'z').subarray(0, 12)),
        code: 'GOSSIP_ERR_MALFORMED_FRAME',
      },
      {
        // 16 MiB of zeros deflate to about 16 KiB: inflating stops at --max-data.
        name: 'a zlib bomb over --max-data',
        bytes: legacyFrame('M', 'bad/e', t, legacyPayload(Buffer.alloc(16 * 1024 * 1024), 'z')),
        code: 'GOSSIP_ERR_DATA_TOO_LARGE',
      },
      {
        name: 'an emitted zlib bomb',
        bytes: legacyFrame('S', 'bad/f', t, legacyPayload(Buffer.alloc(maxData + 1), 'z')),
        code: 'GOSSIP_ERR_DATA_TOO_LARGE',
      },
      {
        name: 'a missing tag (empty data without "=")',
        bytes: legacyFrame('M', 'bad/g', t, Buffer.alloc(0)),
        code: 'GOSSIP_ERR_MALFORMED_FRAME',
      },
      {
        name: 'an unknown tag',
        bytes: legacyFrame('M', 'bad/h', t, Buffer.from('#x')),
        code: 'GOSSIP_ERR_MALFORMED_FRAME',
      },
      {
        name: 'a ts an hour ahead of the server',
        bytes: legacyFrame('M', 'bad/i', now() + 3_600_000_000_000n, Buffer.from('=x')),
        code: 'GOSSIP_ERR_TS_AHEAD',
      },
      {
        name: 'a handshake that is not GOSSIP',
        bytes: Buffer.concat([Buffer.from('GOSSIX'), i64(0n)]),
        code: 'GOSSIP_ERR_BAD_MAGIC',
        handshake: false,
      },
      {
        name: 'an HTTP request',
        bytes: Buffer.from('GET / HTTP/1.1\r\n\r\n'),
        code: 'GOSSIP_ERR_BAD_MAGIC',
        handshake: false,
      },
    ];
    const refusedBefore = await d.metric('gossip_refused_total');
    const errorsBefore = await d.metric('gossip_protocol_errors_total');
    for (const [i, c] of cases.entries()) {
      const bad = c.handshake === false ? await openLegacy(d.port) : await legacy(d.port);
      if (c.handshake !== false) await bad.replay();
      bad.send(c.bytes);
      const line = await errorLine(bad);
      expect(line.code, c.name).toBe(c.code);
      expect(
        bad.events.filter((e) => e.kind !== 'D'),
        c.name,
      ).toEqual([]);
      // The good clients carry on between the bad ones.
      pub.publish(`good/${i}`, now(), String(i));
      await n.next(messageFor(`good/${i}`));
      await sub.message(`good/${i}`);
      await pub.message(`good/${i}`);
    }
    await marker(n, n, sub, pub);
    // Nothing of the bad input was stored or broadcast.
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].map((x) => `bad/${x}`);
    expect((await n.fetch(ids)).every((e) => !e.found)).toBe(true);
    expect(n.messages().some((m) => m.id.startsWith('bad/'))).toBe(false);
    expect(sub.messages().some((m) => m.id.startsWith('bad/'))).toBe(false);
    const limits = cases.filter((c) => /ID_TOO_LONG|ID_EMPTY|DATA_TOO_LARGE|TS_AHEAD/.test(c.code)).length;
    expect((await d.metric('gossip_refused_total')) - refusedBefore).toBe(limits);
    expect((await d.metric('gossip_protocol_errors_total')) - errorsBefore).toBe(cases.length - limits);
    expect(d.child.exitCode).toBeNull();
    // Every bad connection is gone on the server's side too: only the good pair is left.
    // The server sees each close a moment after the client does, so this asks a bounded number of times.
    let open = await d.metric('gossip_legacy_connections');
    for (let i = 0; i < 100 && open !== 2; i++) open = await d.metric('gossip_legacy_connections');
    expect(open).toBe(2);
  });

  it('legacy bad input - a zlib payload of exactly --max-data is accepted', async () => {
    const d = await h.start({ args: ['--max-data', '64KiB'] });
    const n = await h.live(d.port);
    const l = await legacyLive(d.port);
    const data = Buffer.alloc(64 * 1024, 7);
    l.publish('edge', past(now(), 1000), data, 'z');
    const m = await n.next<MessageFrame>(messageFor('edge'));
    expect(Buffer.from(m.data).equals(data)).toBe(true);
    expect(inflateSync((await l.message('edge')).payload.subarray(1)).equals(data)).toBe(true);
  });
});

describe('legacy limits', () => {
  it('legacy limits - a legacy subscriber that does not read is dropped at --max-outbound with one line GOSSIP_ERR_SLOW_CONSUMER', async () => {
    const d = await h.start({ args: ['--max-outbound', '1MiB'] });
    const n = await h.live(d.port);
    const l = await legacyLive(d.port);
    l.pause();
    let dropped = false;
    void d
      .waitLog((line) => line.msg.startsWith('slow consumer disconnected') && line.legacy === true)
      .then(() => {
        dropped = true;
      });
    // Random data goes out raw ("="): each publish adds all of its bytes to what l leaves unread.
    const data = randomBytes(256 * 1024);
    let sent = 0;
    while (!dropped && sent < 400) await n.publish(`big/${sent++}`, now(), data);
    l.resume();
    expect(dropped).toBe(true);
    expect((await errorLine(l)).code).toBe('GOSSIP_ERR_SLOW_CONSUMER');
    // What it had been sent before, whole and in order, then the line.
    expect(l.messages().map((m) => m.id)).toEqual(Array.from({ length: l.messages().length }, (_, i) => `big/${i}`));
    expect(await d.metric('gossip_slow_consumer_disconnects_total')).toBe(1);
    // The reading client carries on.
    await marker(n, n);
    expect(n.isClosed).toBe(false);
  });

  it('legacy limits - --idle-timeout does not apply: a quiet legacy subscriber outlives silent native clients', async () => {
    const d = await h.start({ args: ['--idle-timeout', '200ms'] });
    const l = await legacyLive(d.port);
    // Native clients are the clock: each is closed 200 ms after its replay-done, so after
    // three in a row the legacy client has sent nothing for over 600 ms.
    for (let i = 0; i < 3; i++) {
      expect((await fatalError(await h.live(d.port))).code).toBe('GOSSIP_ERR_IDLE_TIMEOUT');
    }
    expect(l.isClosed).toBe(false);
    // Still served both ways: its own publish comes back.
    l.publish('still-open', now(), 'ok');
    await l.message('still-open');
    expect(l.text).toBe('');
  });
});

describe('legacy auth', () => {
  /** Refused: one line, then a close; never GOSSIP\n. */
  async function refused(d: Gossipd): Promise<{ code: string; message: string }> {
    const c = await openLegacy(d.port);
    c.send(legacyHandshake(0n));
    const line = await errorLine(c);
    expect(c.welcomed).toBe(false);
    return line;
  }

  it('legacy auth - with --token the legacy handshake is refused with one line, and native clients with the token work', async () => {
    const d = await h.start({ args: ['--token', 'secret'] });
    const line = await refused(d);
    expect(line.code).toBe('GOSSIP_ERR_UNAUTHORIZED');
    expect(line.message).toMatch(/--legacy-with-tokens/);
    expect(await d.metric('gossip_auth_failures_total')).toBe(1);
    await d.waitLog((l) => l.msg === 'auth failed' && l.legacy === true);
    const n = await h.live(d.port, { token: 'secret' });
    await marker(n, n);
    // A native hello without the token is still refused.
    const bad = await h.open(d.port);
    bad.send(bad.enc.hello({ since: null }).take());
    expect((await fatalError(bad)).code).toBe('GOSSIP_ERR_UNAUTHORIZED');
  });

  it.each([
    ['--legacy-with-tokens', { args: ['--token', 'secret', '--legacy-with-tokens'] }],
    ['GOSSIP_LEGACY_WITH_TOKENS', { args: ['--token', 'secret'], env: { GOSSIP_LEGACY_WITH_TOKENS: 'true' } }],
  ])('legacy auth - %s serves the legacy handshake without a token, and warns in the log', async (_name, options) => {
    const d = await h.start(options);
    await d.waitLog((l) => l.level === 40 && /without auth/.test(l.msg));
    const l = await legacyLive(d.port);
    const n = await h.live(d.port, { token: 'secret' });
    l.publish('k', past(now(), 1000), 'from legacy');
    expect(Buffer.from((await n.next<MessageFrame>(messageFor('k'))).data).toString()).toBe('from legacy');
    await marker(n, l);
  });

  it.each([
    ['--legacy off', { args: ['--legacy', 'off'] }],
    ['GOSSIP_LEGACY=off', { env: { GOSSIP_LEGACY: 'off' } }],
  ])('legacy off - with %s a legacy handshake gets one line and a close; native clients are unaffected', async (_name, options) => {
    const d = await h.start(options);
    const line = await refused(d);
    expect(line.code).toBe('GOSSIP_ERR_UNSUPPORTED_VERSION');
    expect(line.message).toMatch(/--legacy off/);
    const n = await h.live(d.port);
    await marker(n, n);
  });
});
