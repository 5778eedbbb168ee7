import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GossipClient, type GossipError } from '@gossip/client';
import {
  type AckFrame,
  AckStatus,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  MAX_HELLO_FRAME_BYTES,
  now,
} from '@gossip/protocol';
import { uncheckedEncoder } from '@gossip/protocol/testing';
import { RawClient } from '@gossip/testing';
import { describe, expect, it } from 'vitest';
import { LegacyClient, legacyFrame, legacyPayload } from '../src/legacy-client.js';
import { fatalError, harness } from './harness.js';

/*
 * The edges of a real gossipd against hostile clients (issue 14): what one connection
 * can make the server read, hold or send, and what it can do to the others. Memory is
 * read from /proc: the peak (VmHWM) after an attack against the resident size before it.
 */

const h = harness();
const KiB = 1024;
const MiB = 1024 * 1024;
const FLOOD = fileURLToPath(new URL('../fixtures/flood.mjs', import.meta.url));
const CERT = fileURLToPath(new URL('../fixtures/tls-cert.pem', import.meta.url));
const KEY = fileURLToPath(new URL('../fixtures/tls-key.pem', import.meta.url));

const ackFor = (reqId: number) => (f: { kind: number; reqId?: number }) =>
  f.kind === FrameKind.Ack && f.reqId === reqId;

/** Publishes `count` values of `bytes` bytes under `<prefix><n>`, all in flight at once. */
async function publishMany(c: RawClient, prefix: string, count: number, bytes: number): Promise<void> {
  const value = Buffer.alloc(bytes, 0x61);
  const acks = await Promise.all(Array.from({ length: count }, (_, n) => c.publish(`${prefix}${n}`, now(), value)));
  expect(acks.filter((a) => a.status !== AckStatus.Accepted)).toEqual([]);
}

/**
 * A reader that stays away: the test's own process reads nothing for `ms` (the thread
 * blocks). What is under test is what the server does meanwhile, not an event to wait for.
 */
function stayAway(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Pings on `c` one after another until `done()`; resolves with how many were answered (every one is awaited). */
async function pingUntil(c: RawClient, done: () => boolean): Promise<number> {
  let answered = 0;
  while (!done()) {
    await c.ping();
    answered++;
  }
  return answered;
}

describe('edges - fetch', () => {
  it('edges - a fetch naming an empty or a 257-byte id gets an error ack and the connection stays (Q1)', async () => {
    const d = await h.start();
    const c = await h.live(d.port);
    await c.publish('k', now(), 'v');
    const raw = uncheckedEncoder();
    c.send(raw.fetch(901, ['k', '']).take());
    c.send(raw.fetch(902, ['a'.repeat(257)]).take());
    // 129 characters, 257 bytes.
    c.send(raw.fetch(903, [`${'é'.repeat(128)}a`]).take());
    const acks = await Promise.all([901, 902, 903].map((id) => c.next<AckFrame>(ackFor(id))));
    expect(acks.map((a) => [a.status, a.code])).toEqual([
      [AckStatus.Error, 'GOSSIP_ERR_ID_EMPTY'],
      [AckStatus.Error, 'GOSSIP_ERR_ID_TOO_LONG'],
      [AckStatus.Error, 'GOSSIP_ERR_ID_TOO_LONG'],
    ]);
    const [entry] = await c.fetch(['k']);
    expect(entry).toMatchObject({ id: 'k', found: true });
    expect(c.isClosed).toBe(false);
    expect(d.child.exitCode).toBeNull();
    expect(await d.metric('gossip_refused_total')).toBe(3);
  });

  it('edges - a fetch naming one id 9,999 times answers it once, at its first place (Q2)', async () => {
    const d = await h.start();
    const c = await h.live(d.port);
    const big = Buffer.alloc(MiB, 0x62);
    await c.publish('big', now(), big);
    const entries = await c.fetch([...Array.from({ length: 9_998 }, () => 'big'), 'missing', 'big']);
    expect(entries.map((e) => e.id)).toEqual(['big', 'missing']);
    expect(entries[0]?.found && Buffer.from(entries[0].data).equals(big)).toBe(true);
  });

  it('edges - 200 pipelined fetches of 10,000 ids from a client that does not read hold the server to about --max-outbound, and others are answered', async () => {
    const maxOutbound = 16 * MiB;
    const d = await h.start({ args: ['--max-outbound', '16MiB'] });
    const pub = await h.live(d.port, { echo: false });
    await publishMany(pub, 'v/', 2_000, 64 * KiB);
    const ids = Array.from({ length: 10_000 }, (_, n) => `v/${n % 2_000}`);

    const attacker = await h.live(d.port, { echo: false });
    attacker.socket.pause();
    const before = await d.memory();
    const enc = new FrameEncoder();
    for (let reqId = 1; reqId <= 200; reqId++) attacker.send(enc.fetch(reqId, ids).take());

    // Each fetch asks for 128 MB: 25 GB in all. The server sends what the socket takes and stops.
    const pinger = await h.live(d.port);
    let done = false;
    const pings = pingUntil(pinger, () => done);
    await d.quiet();
    done = true;
    expect(await pings).toBeGreaterThan(0);
    const after = await d.memory();
    expect(after.peak - before.rss, 'peak RSS growth').toBeLessThan(2 * maxOutbound);
    expect(attacker.isClosed).toBe(false);
    expect(d.child.exitCode).toBeNull();

    // Reading again, the attacker gets its answers in order, past the 8 fetches queued when it stopped.
    attacker.socket.resume();
    for (let reqId = 1; reqId <= 10; reqId++) {
      const last = await attacker.next(
        (f) => (f.kind === FrameKind.FetchResult && f.reqId === reqId && !f.more) || f.kind === FrameKind.Error,
      );
      expect(last.kind).toBe(FrameKind.FetchResult);
    }
    attacker.close();
  });

  it('edges - while a fetch streams its results, a pong never gets ahead of a message it covers (K2)', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    await publishMany(pub, 'v/', 2_000, 16 * KiB);
    const ids = Array.from({ length: 2_000 }, (_, n) => `v/${n}`);
    const reader = await h.live(d.port);
    const setupTs = (await reader.replay()).done.newestTs;
    let publishing = true;
    const publisher = (async () => {
      for (let n = 0; publishing; n++) await pub.publish(`live/${n % 100}`, now(), 'x');
    })();
    for (let round = 0; round < 3; round++) {
      const fetched = reader.fetch(ids);
      let fetchDone = false;
      void fetched.then(() => {
        fetchDone = true;
      });
      while (!fetchDone) await reader.ping();
      await fetched;
    }
    publishing = false;
    await publisher;
    // Every pong's newest ts is the setup's, or that of a message this client received before it.
    const seen = new Set<bigint>([setupTs]);
    for (const f of reader.frames) {
      if (f.kind === FrameKind.Message) seen.add(f.ts);
      else if (f.kind === FrameKind.Pong) expect(seen.has(f.newestTs), `pong newestTs ${f.newestTs}`).toBe(true);
    }
  });

  it('edges - a client whose fetch output and live messages pass --max-outbound is dropped, its error frame ahead of what it had not been sent (E2)', async () => {
    const d = await h.start({ args: ['--max-outbound', '4MiB'] });
    const pub = await h.live(d.port, { echo: false });
    await publishMany(pub, 'v/', 200, 64 * KiB);
    const attacker = await h.live(d.port);
    attacker.socket.pause();
    attacker.send(
      new FrameEncoder()
        .fetch(
          1,
          Array.from({ length: 200 }, (_, n) => `v/${n}`),
        )
        .take(),
    );
    // Live messages on top of the paced fetch output, until the cap is passed.
    const value = Buffer.alloc(64 * KiB, 0x6c);
    const dropped = d.waitLog((l) => l.msg.startsWith('slow consumer disconnected'));
    let stop = false;
    void dropped.then(() => {
      stop = true;
    });
    for (let n = 0; !stop && n < 10_000; n++) await pub.publish(`live/${n}`, now(), value);
    await dropped;
    // Away for longer than a peer that reads is given to close after its last bytes.
    stayAway(3_000);
    attacker.socket.resume();
    const error = await fatalError(attacker);
    expect(error.code).toBe('GOSSIP_ERR_SLOW_CONSUMER');
    expect(attacker.frames.at(-1)).toBe(error);
    expect(attacker.decodeError).toBeUndefined();
  });

  it('edges - pings of another client are answered while one client runs maximal fetches back to back', async () => {
    const d = await h.start();
    const pub = await h.live(d.port, { echo: false });
    await publishMany(pub, 'f/', 2_000, 64 * KiB);
    // The most ids a fetch may name, each a 64 KiB value: 128 MB per fetch.
    const ids = Array.from({ length: 10_000 }, (_, n) => `f/${n % 2_000}`);
    const reader = await h.live(d.port, { echo: false });
    const pinger = await h.live(d.port);
    let done = false;
    const pings = pingUntil(pinger, () => done);
    for (let round = 0; round < 3; round++) {
      const entries = await reader.fetch(ids);
      expect(entries.length).toBe(2_000);
      expect(entries.every((e) => e.found && e.data.length === 64 * KiB)).toBe(true);
    }
    done = true;
    expect(await pings).toBeGreaterThan(0);
  });
});

describe('edges - publishes', () => {
  it('edges - a client pipelining large publishes is read no faster than the log takes them: server memory does not grow with what it sends', async () => {
    const d = await h.start({ args: ['--fsync', 'always'] });
    const c = await h.live(d.port, { echo: false });
    const before = await d.memory();
    const value = Buffer.alloc(4 * MiB, 0x70);
    const enc = new FrameEncoder();
    // 1 GiB sent at once, acks read as they come.
    const acks = Promise.all(
      Array.from({ length: 250 }, (_, n) => {
        c.send(enc.publish(n + 1, `p/${n}`, now(), value).take());
        return c.next<AckFrame>(ackFor(n + 1));
      }),
    );
    expect((await acks).every((a) => a.status === AckStatus.Accepted)).toBe(true);
    // Two frames in flight, the frames read meanwhile, and garbage the GC has yet to take;
    // not a size that grows with what the client sends (it did: 750 MB for this 1 GiB).
    const after = await d.memory();
    expect(after.peak - before.rss, 'peak RSS growth').toBeLessThan(192 * MiB);
  });
});

describe('edges - before the welcome', () => {
  it('edges - a frame declared longer than the largest hello is GOSSIP_ERR_FRAME_TOO_LARGE before anything is allocated (F3)', async () => {
    const d = await h.start();
    const before = await d.memory();
    // 40 connections each declaring a hello of 10 MiB and sending its first bytes.
    const head = Buffer.from('00a00000018947535001', 'hex');
    const conns = await Promise.all(Array.from({ length: 40 }, () => h.open(d.port)));
    for (const c of conns) c.send(head);
    const errors = await Promise.all(conns.map((c) => fatalError(c)));
    expect(errors.map((e) => e.code)).toEqual(conns.map(() => 'GOSSIP_ERR_FRAME_TOO_LARGE'));
    const after = await d.memory();
    expect(after.peak - before.rss, 'peak RSS growth').toBeLessThan(16 * MiB);
  });

  it('edges - a hello of exactly the largest length is waited for; one byte more is refused', async () => {
    const d = await h.start({ args: ['--hello-timeout', '500ms'] });
    const at = await h.open(d.port);
    const over = await h.open(d.port);
    const lengthOf = (n: number) => {
      const b = Buffer.alloc(5);
      b.writeUInt32BE(n);
      b[4] = FrameKind.Hello;
      return b;
    };
    at.send(lengthOf(MAX_HELLO_FRAME_BYTES));
    over.send(lengthOf(MAX_HELLO_FRAME_BYTES + 1));
    expect((await fatalError(over)).code).toBe('GOSSIP_ERR_FRAME_TOO_LARGE');
    expect((await fatalError(at)).code).toBe('GOSSIP_ERR_HELLO_TIMEOUT');
  });
});

describe('edges - legacy compressed payloads', () => {
  it('edges - 40 frames of 10 KB that each inflate to --max-data never get an honest fast reader dropped (L4)', async () => {
    // The defaults: --max-data 10 MiB, --max-outbound 64 MiB. 400 MiB from 400 KB.
    const d = await h.start();
    const maxData = 10 * MiB;
    const zeros = Buffer.alloc(maxData);
    // An honest reader that keeps nothing: it checks each message as it comes.
    const honest = await h.live(d.port);
    let got = 0;
    let wrong = 0;
    const inOrder: string[] = [];
    const decoder = new FrameDecoder(
      (f) => {
        if (f.kind !== FrameKind.Message || !f.id.startsWith('z/')) return;
        inOrder.push(f.id);
        if (!f.data.equals(zeros)) wrong++;
        got++;
      },
      { maxFrameBytes: maxData + 64 * KiB },
    );
    honest.socket.removeAllListeners('data');
    honest.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    const pinger = await h.live(d.port);
    const legacy = await LegacyClient.connect(d.port, now());
    const payload = legacyPayload(zeros, 'z');
    expect(payload.length).toBeLessThan(16 * KiB);
    const base = now();
    legacy.send(
      Buffer.concat(Array.from({ length: 40 }, (_, n) => legacyFrame('M', `z/${n}`, base + BigInt(n), payload))),
    );
    // A well-behaved client pings all along; the burst must not stop its answers.
    const closed = honest.closed.then(() => 'closed' as const);
    let pongs = 0;
    while (got < 40 && (await Promise.race([pinger.ping().then(() => 'pong' as const), closed])) === 'pong') pongs++;
    expect(pongs).toBeGreaterThan(0);
    expect(honest.isClosed, 'the honest reader was dropped').toBe(false);
    expect(got).toBe(40);
    expect(wrong).toBe(0);
    expect(inOrder).toEqual(Array.from({ length: 40 }, (_, n) => `z/${n}`));
    expect(await d.metric('gossip_slow_consumer_disconnects_total')).toBe(0);
  });
});

describe('edges - legacy order', () => {
  it('edges - raw, compressed and transient legacy frames in one chunk keep their order (L2, L4)', async () => {
    const d = await h.start();
    const sub = await h.live(d.port);
    const legacy = await LegacyClient.connect(d.port, now());
    const base = now();
    const big = Buffer.alloc(64 * KiB, 0x7a);
    legacy.send(
      Buffer.concat([
        legacyFrame('M', 'o/a', base, legacyPayload('a')),
        legacyFrame('M', 'o/b', base + 1n, legacyPayload(big, 'z')),
        legacyFrame('S', 'o/c', base + 2n, legacyPayload('c')),
        legacyFrame('M', 'o/d', base + 3n, legacyPayload('d')),
        legacyFrame('M', 'o/e', base + 4n, legacyPayload(big, 'z')),
        legacyFrame('S', 'o/f', base + 5n, legacyPayload(big, 'z')),
      ]),
    );
    await sub.next((f) => f.kind === FrameKind.Message && f.id === 'o/f');
    const got = sub.messages().filter((m) => m.id.startsWith('o/'));
    expect(got.map((m) => m.id)).toEqual(['o/a', 'o/b', 'o/c', 'o/d', 'o/e', 'o/f']);
    expect(Buffer.from(got[1]?.data ?? []).equals(big)).toBe(true);
  });

  it('edges - a z payload that is not zlib closes the legacy connection, and nothing after it is stored', async () => {
    const d = await h.start();
    const sub = await h.live(d.port);
    const legacy = await LegacyClient.connect(d.port, now());
    const base = now();
    legacy.send(
      Buffer.concat([
        legacyFrame('M', 'bad/a', base, legacyPayload('a')),
        legacyFrame('M', 'bad/b', base + 1n, Buffer.from('znot zlib at all')),
        legacyFrame('M', 'bad/c', base + 2n, legacyPayload('c')),
      ]),
    );
    await legacy.closed;
    expect(legacy.text).toContain('GOSSIP_ERR_MALFORMED_FRAME');
    // Stored: its broadcast follows the write (a legacy publish has no ack to wait for).
    await sub.next((f) => f.kind === FrameKind.Message && f.id === 'bad/a');
    const entries = await sub.fetch(['bad/a', 'bad/b', 'bad/c']);
    expect(entries.map((e) => e.found)).toEqual([true, false, false]);
    expect(sub.messages().map((m) => m.id)).toEqual(['bad/a']);
  });
});

describe('edges - legacy bad input behind an inflate', () => {
  it('edges - frames waiting behind a z inflate are stored before a bad frame after them closes the connection (L6)', async () => {
    const d = await h.start();
    const sub = await h.live(d.port);
    const legacy = await LegacyClient.connect(d.port, now());
    const base = now();
    const tooLong = Buffer.alloc(9, 0xff);
    tooLong[0] = 0x4d; // M, then an id length of 2^64 - 1
    legacy.send(
      Buffer.concat([
        legacyFrame('M', 'w/z', base, legacyPayload(Buffer.alloc(4 * KiB, 0x31), 'z')),
        legacyFrame('M', 'w/raw', base + 1n, legacyPayload('r')),
        tooLong,
      ]),
    );
    await legacy.closed;
    expect(legacy.text).toContain('GOSSIP_ERR_ID_TOO_LONG');
    await sub.next((f) => f.kind === FrameKind.Message && f.id === 'w/raw');
    expect(sub.messages().map((m) => m.id)).toEqual(['w/z', 'w/raw']);
  });

  it('edges - a legacy client that hangs up right after sending still has its frames stored', async () => {
    const d = await h.start();
    const sub = await h.live(d.port);
    const legacy = await LegacyClient.connect(d.port, now());
    const base = now();
    legacy.socket.end(
      Buffer.concat([
        legacyFrame('M', 'h/z', base, legacyPayload(Buffer.alloc(4 * KiB, 0x32), 'z')),
        legacyFrame('M', 'h/raw', base + 1n, legacyPayload('r')),
      ]),
    );
    await sub.next((f) => f.kind === FrameKind.Message && f.id === 'h/raw');
    expect(sub.messages().map((m) => m.id)).toEqual(['h/z', 'h/raw']);
  });
});

describe('edges - slow consumers', () => {
  it('edges - the client reports GOSSIP_ERR_SLOW_CONSUMER when it is dropped for reading too slowly', async () => {
    const d = await h.start({ args: ['--max-outbound', '4MiB'] });
    const client = new GossipClient({ address: `127.0.0.1:${d.port}`, since: 'now', name: 'slow' });
    try {
      await client.connect();
      const disconnected = new Promise<GossipError>((resolve) => client.once('disconnect', resolve));
      // spawnSync blocks this process: the client reads nothing while another process floods.
      const flood = spawnSync(process.execPath, [FLOOD, `127.0.0.1:${d.port}`, '48', String(MiB)], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(flood.status, flood.stderr).toBe(0);
      expect(JSON.parse(flood.stdout)).toEqual({ accepted: 48 });
      // Still away for a while after being dropped.
      stayAway(3_000);
      expect((await disconnected).code).toBe('GOSSIP_ERR_SLOW_CONSUMER');
    } finally {
      await client.close();
    }
  });
});

describe('edges - descriptors', () => {
  it('edges - a TLS connection counts against --max-connections from its accept, and is closed at --hello-timeout without a handshake', async () => {
    const d = await h.start({
      args: ['--tls-cert', CERT, '--tls-key', KEY, '--max-connections', '4', '--hello-timeout', '1s'],
    });
    // Plain TCP to the TLS port: never a handshake.
    const silent = await Promise.all(Array.from({ length: 4 }, () => h.open(d.port)));
    let counted = await d.metric('gossip_connections');
    for (let i = 0; i < 100 && counted < 4; i++) counted = await d.metric('gossip_connections');
    expect(counted).toBe(4);
    const fifth = await h.open(d.port, { rejectUnauthorized: false });
    expect((await fatalError(fifth)).code).toBe('GOSSIP_ERR_TOO_MANY_CONNECTIONS');
    await Promise.all(silent.map((c) => c.closed));
    expect(silent.flatMap((c) => c.frames)).toEqual([]);
    // The client sees its close before the server's socket has closed and left the count.
    for (let i = 0; i < 100 && counted > 0; i++) counted = await d.metric('gossip_connections');
    expect(counted).toBe(0);
    const welcomed = await h.connect(d.port, {}, { rejectUnauthorized: false });
    expect(welcomed.welcome).toBeDefined();
  });

  it(
    'edges - a TLS connection refused at the limit without a handshake is closed at --hello-timeout, and does not hold up a stop',
    { timeout: 20_000 },
    async () => {
      const d = await h.start({
        args: ['--tls-cert', CERT, '--tls-key', KEY, '--max-connections', '1', '--hello-timeout', '1s'],
      });
      const admitted = await h.connect(d.port, {}, { rejectUnauthorized: false });
      expect(admitted.welcome).toBeDefined();
      const refused = await h.open(d.port);
      await refused.closed;
      expect(refused.frames).toEqual([]);
      const again = await h.open(d.port);
      let refusals = await d.metric('gossip_connections_refused_total');
      for (let i = 0; i < 100 && refusals < 2; i++) refusals = await d.metric('gossip_connections_refused_total');
      expect(refusals).toBe(2);
      expect((await d.stop()).code).toBe(0);
      await again.closed;
    },
  );

  it('edges - under a descriptor limit, a connection flood leaves the store its descriptors: every publish is stored', async () => {
    const d = await h.start({ nofile: 256, args: ['--segment-size', '64KiB', '--compact-threshold', '0'] });
    const listening = await d.waitLog((l) => l.msg.includes('listening on gossip'));
    const max = listening.maxConnections as number;
    expect(max).toBeGreaterThan(0);
    expect(max).toBeLessThan(256 - 128);
    const pub = await h.live(d.port, { echo: false });
    // Far more connections than the limit, each with a hello: refused, or closed at once by the listener.
    const flood = await Promise.all(
      Array.from({ length: 400 }, async () => {
        try {
          return await RawClient.connect(d.port, {});
        } catch {
          return undefined;
        }
      }),
    );
    const admitted = flood.filter((c) => c !== undefined);
    expect(admitted.length).toBeLessThanOrEqual(max - 1);
    // Every append while the flood holds what it can: 2 MB over 64 KiB segments, about 32 new files.
    await publishMany(pub, 'fd/', 2_000, KiB);
    expect(await d.descriptors()).toBeLessThan(256);
    for (const c of admitted) c.close();
    expect(d.child.exitCode).toBeNull();
    const [entry] = await pub.fetch(['fd/1999']);
    expect(entry?.found).toBe(true);
  });

  it('edges - the default --max-connections is lowered to what the descriptor limit allows, and says so', async () => {
    const d = await h.start({ nofile: 512 });
    const line = await d.waitLog((l) => l.msg.startsWith('serving at most'));
    const listening = await d.waitLog((l) => l.msg.includes('listening on gossip'));
    expect(line.maxConnections).toBe(listening.maxConnections);
    expect(listening.maxConnections as number).toBeLessThan(512);
  });

  it('edges - the admin listener takes 16 connections at once and closes more as they connect', async () => {
    const d = await h.start();
    // Idle HTTP connections: no request, so the server keeps them open.
    const held = await Promise.all(Array.from({ length: 16 }, () => h.open(d.adminPort)));
    const extra = await h.open(d.adminPort);
    await extra.closed;
    expect(held.some((c) => c.isClosed)).toBe(false);
    for (const c of held) c.close();
    await Promise.all(held.map((c) => c.closed));
    // The server sees the closes a moment after this side: asked a bounded number of times.
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++)
      status = (await d.admin('/healthz').catch(() => ({ status: 0 }))).status;
    expect(status).toBe(200);
  });

  it('edges - --max-connections above what the descriptor limit allows is lowered, with a warning', async () => {
    const d = await h.start({ nofile: 512, args: ['--max-connections', '5000'] });
    const warning = await d.waitLog((l) =>
      l.msg.startsWith('--max-connections 5000 is more than the descriptor limit'),
    );
    expect(warning.maxConnections as number).toBeLessThan(512);
    const listening = await d.waitLog((l) => l.msg.includes('listening on gossip'));
    expect(listening.maxConnections).toBe(warning.maxConnections);
  });
});
