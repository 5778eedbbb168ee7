import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import {
  AckStatus,
  Durability,
  type FetchEntry,
  type FetchFrame,
  FrameKind,
  MessageFlags,
  MIN_TS,
  ResyncReason,
} from '@gossip/protocol';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ClientMessage,
  type ClientOptions,
  GossipClient,
  GossipState,
  jsonCodec,
  type PublishResult,
  utf8Codec,
} from '../src/index.js';
import { FaultServer, latch } from './fault-server.js';

let server: FaultServer;
const clients: GossipClient<string>[] = [];

beforeEach(async () => {
  server = await FaultServer.start();
});
afterEach(async () => {
  vi.useRealTimers();
  for (const c of clients.splice(0)) await c.close({ timeoutMs: 100 });
  await server.close();
});

function client(options: ConstructorParameters<typeof GossipClient<string>>[0] = {}): GossipClient<string> {
  const c = new GossipClient<string>({ address: server.address, codec: utf8Codec, ...options });
  clients.push(c);
  return c;
}

/** A loopback port nothing listens on: a connection to it is refused. */
async function closedPort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

describe('client connect', () => {
  it('client - connect resolves after the first replay-done and asks for everything by default', async () => {
    const c = client();
    const states: string[] = [];
    c.on('state', (s) => states.push(s));
    await c.connect();
    const conn = await server.connection(0);
    expect(conn.hello.since).toBe(MIN_TS);
    expect(conn.hello.epoch).toBeNull();
    expect(states).toEqual(['connecting', 'replaying', 'ready']);
    expect(c.epoch).toBe(server.epoch);
  });

  it('client - connect rejects with the server error code (bad token)', async () => {
    server.onHello = (conn) => {
      conn.send(conn.enc.error('GOSSIP_ERR_UNAUTHORIZED', 'the token is not valid').take());
      conn.socket.end();
    };
    const c = client({ token: 'nope' });
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_UNAUTHORIZED' });
    expect(c.state).toBe('closed');
  });

  it('client - connect rejects with GOSSIP_ERR_UNSUPPORTED_VERSION', async () => {
    server.onHello = (conn) => {
      conn.send(conn.enc.error('GOSSIP_ERR_UNSUPPORTED_VERSION', 'version 1 is not supported').take());
      conn.socket.end();
    };
    await expect(client().connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_UNSUPPORTED_VERSION' });
  });

  it('client - connect to a closed port rejects with GOSSIP_ERR_IO and leaves the client closed with no timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const c = client({ address: `127.0.0.1:${await closedPort()}` });
    const states: string[] = [];
    c.on('state', (s) => states.push(s));
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_IO' });
    expect(states).toEqual(['connecting', 'closed']);
    expect(vi.getTimerCount()).toBe(0);
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
    await c.close();
  });

  it('client - connect can be aborted, which closes the client', async () => {
    server.onHello = () => undefined; // never welcomes
    const ac = new AbortController();
    const c = client();
    const p = c.connect({ signal: ac.signal });
    await server.connection(0);
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });
    expect(c.state).toBe('closed');
  });

  it('client - a server that accepts but never answers fails connect() with GOSSIP_ERR_TIMEOUT', async () => {
    server.onHello = () => undefined;
    const c = client({ connectTimeoutMs: 50 });
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_TIMEOUT' });
    expect(c.state).toBe('closed');
  });

  it('client - a peer answering like an HTTP server fails with GOSSIP_ERR_NOT_GOSSIP_SERVER, not FRAME_TOO_LARGE', async () => {
    server.onHello = (conn) => conn.socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    const c = client();
    const error = await c.connect().catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'GOSSIP_ERR_NOT_GOSSIP_SERVER',
      cause: { code: 'GOSSIP_ERR_FRAME_TOO_LARGE' },
    });
    expect((error as Error).message).toContain('is not a gossip server');
    expect((error as Error).message).toContain('"HTTP/1.1 400');
    expect((error as Error).message).not.toContain('--max-frame');
    expect(c.state).toBe('closed');
  });

  it('client - a real HTTP server on the port fails with GOSSIP_ERR_NOT_GOSSIP_SERVER', async () => {
    const http = createHttpServer((_req, res) => res.end());
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    try {
      const c = client({ address: `127.0.0.1:${(http.address() as AddressInfo).port}` });
      await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_NOT_GOSSIP_SERVER' });
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  it('client - before the welcome only a welcome or an error frame of welcome size is accepted', async () => {
    // A frame just over the largest welcome (1 + 44 + 16 KiB), and a frame of another kind.
    const answers = [
      (conn: FaultConnLike) => {
        const big = Buffer.alloc(4 + 1 + 44 + 16 * 1024 + 1);
        big.writeUInt32BE(big.length - 4, 0);
        big[4] = FrameKind.Error;
        conn.send(big);
      },
      (conn: FaultConnLike) => conn.send(conn.enc.message(0, 'k', 1n, Buffer.from('v')).take()),
    ];
    for (const answer of answers) {
      server.onHello = answer;
      await expect(client().connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_NOT_GOSSIP_SERVER' });
    }
    // A welcome with the largest extension is a welcome: {server: <str16 of 16,373 bytes>} is 16 KiB.
    server.onHello = (conn) => {
      const welcome = conn.enc
        .welcome({
          epoch: server.epoch,
          newestTs: MIN_TS,
          horizon: null,
          maxIdBytes: 256,
          maxDataBytes: 1024,
          maxFrameBytes: 64 * 1024,
          server: 'x'.repeat(16 * 1024 - 11),
        })
        .take();
      expect(welcome.length).toBe(4 + 1 + 44 + 16 * 1024);
      conn.send(Buffer.concat([welcome, conn.enc.replayDone(0, MIN_TS, false).take()]));
    };
    const c = client();
    const info = new Promise<{ server: string | undefined }>((resolve) => c.once('connect', resolve));
    await c.connect();
    expect((await info).server).toHaveLength(16 * 1024 - 11);
  });
});

type FaultConnLike = Parameters<FaultServer['onHello']>[0];

/** The bytes of a welcome from the fault server, with `patch` applied. */
function patchedWelcome(patch: (frame: Buffer) => void, maxFetchIds?: number): (conn: FaultConnLike) => void {
  return (conn) => {
    const frame = Buffer.from(
      conn.enc
        .welcome({
          epoch: server.epoch,
          newestTs: MIN_TS,
          horizon: null,
          maxIdBytes: 256,
          maxDataBytes: 1024,
          maxFrameBytes: 64 * 1024,
          maxFetchIds,
        })
        .take(),
    );
    patch(frame);
    conn.send(frame);
  };
}

describe('client connect failures', () => {
  it('client - a welcome that fails to decode keeps the decoder code GOSSIP_ERR_MALFORMED_FRAME, not NOT_GOSSIP_SERVER (F4)', async () => {
    const answers: [string, (conn: FaultConnLike) => void][] = [
      ['all-zero epoch', patchedWelcome((f) => f.fill(0, 7, 23))],
      // {maxFetchIds: 1} ends the frame: its value byte becomes 0.
      ['maxFetchIds 0', patchedWelcome((f) => f.writeUInt8(0, f.length - 1), 1)],
      // The empty map 0x80 becomes 0xc1, the byte msgpack never uses.
      ['bad extension', patchedWelcome((f) => f.writeUInt8(0xc1, f.length - 1))],
      // A welcome cut short by the close: the stream ends inside it.
      [
        'welcome cut by a close',
        (conn) => {
          patchedWelcome(() => undefined)({ ...conn, send: (b) => conn.socket.end(b.subarray(0, 20)) });
        },
      ],
    ];
    for (const [name, answer] of answers) {
      server.onHello = answer;
      const c = client();
      const error = await c.connect().catch((e: unknown) => e);
      expect(error, name).toMatchObject({ code: 'GOSSIP_ERR_MALFORMED_FRAME' });
      expect(c.state, name).toBe('closed');
    }
  });

  it('client - a peer that answers a few bytes and closes fails with GOSSIP_ERR_NOT_GOSSIP_SERVER naming them (F4)', async () => {
    for (const bytes of [Buffer.from('hi\n'), Buffer.from('OK'), Buffer.from([0, 0, 0, 9, 0x06, 1])]) {
      server.onHello = (conn) => conn.socket.end(bytes);
      const error = await client()
        .connect()
        .catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'GOSSIP_ERR_NOT_GOSSIP_SERVER',
        cause: { code: 'GOSSIP_ERR_MALFORMED_FRAME' },
      });
      expect((error as Error).message).toContain('is not a gossip server');
    }
    server.onHello = (conn) => conn.socket.end('hi\n');
    expect(
      (
        (await client()
          .connect()
          .catch((e: unknown) => e)) as Error
      ).message,
    ).toContain('"hi\\n"');
  });

  it('client - a peer that closes at once, sending nothing, fails connect() with GOSSIP_ERR_CONNECTION_CLOSED', async () => {
    server.onHello = (conn) => conn.socket.end();
    const c = client();
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_CONNECTION_CLOSED' });
    expect(c.state).toBe('closed');
  });

  it('client - hello options that cannot be encoded are refused by the constructor with GOSSIP_ERR_INVALID_ARGUMENT', () => {
    const big = 'x'.repeat(16 * 1024);
    const bad: ClientOptions<string>[] = [
      { name: big },
      { token: big },
      { name: 'x'.repeat(8 * 1024), token: 'y'.repeat(8 * 1024) },
      { name: 5 as unknown as string },
      { since: 2n ** 64n },
      { since: 2n ** 63n },
      { since: MIN_TS - 1n },
      { since: 5 as unknown as bigint },
      { replayDeltaMs: Number.NaN },
      { replayDeltaMs: Number.POSITIVE_INFINITY },
      { replayDeltaMs: -1 },
    ];
    for (const options of bad) {
      expect(() => new GossipClient({ address: server.address, ...options }), String(Object.keys(options))).toThrow(
        expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
      );
    }
    // The bounds themselves are fine: since -2^63 and 2^63-1, a name and token just inside 16 KiB.
    for (const options of [{ since: MIN_TS }, { since: 2n ** 63n - 1n }, { name: 'x'.repeat(8 * 1024), token: 'y' }]) {
      expect(() => new GossipClient({ address: server.address, ...options })).not.toThrow();
    }
  });

  it('client - a name and token of the largest extension go out in a hello the server reads', async () => {
    // {name: <str16>} is 1 + 5 + 3 + n bytes: n = 16,375 fills 16 KiB.
    const c = client({ name: 'n'.repeat(16 * 1024 - 9) });
    await c.connect();
    expect((await server.connection(0)).hello.name).toHaveLength(16 * 1024 - 9);
    expect(() => client({ name: 'n'.repeat(16 * 1024 - 8) })).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
  });
});

describe('client first connect', () => {
  it('client - waitOnFirstConnect retries on the strategy delays, staying connecting, until a welcome (fake timers)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let hellos = 0;
    server.onHello = (conn) => {
      hellos++;
      if (hellos <= 2) conn.socket.destroy();
      else server.welcome(conn, true);
    };
    const c = client({ waitOnFirstConnect: true, reconnect: (attempt) => attempt * 1000 });
    const delays: number[] = [];
    const states: string[] = [];
    c.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    c.on('state', (s) => states.push(s));
    let connected = false;
    const connecting = c.connect().then(() => {
      connected = true;
    });
    await vi.waitFor(() => expect(delays).toEqual([1000]));
    expect(c.state).toBe('connecting');
    expect(vi.getTimerCount()).toBe(1); // the reconnect timer only
    await vi.advanceTimersByTimeAsync(999);
    expect(server.conns.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await vi.waitFor(() => expect(delays).toEqual([1000, 2000]));
    expect(connected).toBe(false);
    await vi.advanceTimersByTimeAsync(2000);
    await connecting;
    expect(states).toEqual(['connecting', 'replaying', 'ready']);
  });

  it('client - waitOnFirstConnect rejects with the last error once the strategy returns null', async () => {
    const c = client({
      address: `127.0.0.1:${await closedPort()}`,
      waitOnFirstConnect: true,
      reconnect: (attempt) => (attempt <= 2 ? 0 : null),
    });
    const errors: string[] = [];
    c.on('error', (e) => errors.push(e.code));
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_IO' });
    expect(errors).toEqual(['GOSSIP_ERR_IO', 'GOSSIP_ERR_IO', 'GOSSIP_ERR_IO']);
    expect(c.state).toBe('closed');
  });

  it('client - waitOnFirstConnect: close() while waiting rejects connect() with GOSSIP_ERR_CLIENT_CLOSED and leaves no timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const c = client({ address: `127.0.0.1:${await closedPort()}`, waitOnFirstConnect: true, reconnect: () => 60_000 });
    const waiting = new Promise((resolve) => c.once('reconnecting', resolve));
    const connecting = c.connect();
    await waiting;
    expect(vi.getTimerCount()).toBe(1);
    await c.close();
    await expect(connecting).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('client - publish, delete, fetch and emit before connect() fail at once with GOSSIP_ERR_CONNECTION_CLOSED', async () => {
    const c = client();
    const code = { code: 'GOSSIP_ERR_CONNECTION_CLOSED' };
    await expect(c.publish('k', 'v')).rejects.toMatchObject(code);
    await expect(c.delete('k')).rejects.toMatchObject(code);
    await expect(c.fetch('k')).rejects.toMatchObject(code);
    expect(() => c.emit('k', 'v')).toThrow(expect.objectContaining(code));
    expect(c.queued).toBe(0);
    await c.connect();
    expect((await c.publish('k', 'v')).status).toBe('accepted');
  });

  it('client - with queueBeforeConnect, publishes and fetches before connect() wait and go out once connected', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Publish) conn.send(conn.enc.ack(f.reqId, 0, 1).take());
      if (f.kind === FrameKind.Fetch)
        conn.send(conn.enc.fetchResult(f.reqId, false, [{ id: 'k', found: false }]).take());
    };
    const c = client({ queueBeforeConnect: true });
    const published = [c.publish('k', '1', { ts: 1n }), c.delete('k', { ts: 2n })];
    const fetched = c.fetch('k');
    expect(c.emit('k', 'v')).toBe(false);
    expect(c.queued).toBe(2);
    await c.connect();
    expect((await Promise.all(published)).map((r) => r.status)).toEqual(['accepted', 'accepted']);
    expect(await fetched).toEqual([{ id: 'k', found: false }]);
    const sent = (await server.connection(0)).frames.filter((f) => f.kind === FrameKind.Publish);
    expect(sent.map((f) => (f.kind === FrameKind.Publish ? f.ts : 0n))).toEqual([1n, 2n]);
  });

  it('client - with queueBeforeConnect, what waits fails with the error of a failed first connect', async () => {
    const c = client({ address: `127.0.0.1:${await closedPort()}`, queueBeforeConnect: true });
    const published = c.publish('k', 'v');
    const fetched = c.fetch('k');
    await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_IO' });
    await expect(published).rejects.toMatchObject({ code: 'GOSSIP_ERR_IO' });
    await expect(fetched).rejects.toMatchObject({ code: 'GOSSIP_ERR_IO' });
  });

  it('client - with queueBeforeConnect, close() before connect() fails what waits with GOSSIP_ERR_CLIENT_CLOSED', async () => {
    const c = client({ queueBeforeConnect: true });
    const published = c.publish('k', 'v');
    await c.close();
    await expect(published).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
  });
});

describe('client reconnect', () => {
  it('client - reconnects with since = lastTs - delta and the epoch it saw, on the strategy delays (fake timers)', async () => {
    const delays: number[] = [];
    const c = client({ reconnect: (attempt) => attempt * 1000, replayDeltaMs: 5 });
    await c.connect();
    const first = await server.connection(0);
    first.send(first.enc.message(0, 'k', 10_000_000n, Buffer.from('v')).take());
    await once(c as never, 'message').catch(() => undefined);
    await vi.waitFor(() => expect(c.lastTs).toBe(10_000_000n));

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    c.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    // The next two connections are dropped at once, the third is welcomed.
    let hellos = 0;
    server.onHello = (conn) => {
      hellos++;
      if (hellos <= 2) conn.socket.destroy();
      else server.welcome(conn, true);
    };
    first.socket.destroy();
    await vi.waitFor(() => expect(delays).toEqual([1000]));
    expect(server.conns.length).toBe(1); // nothing before the timer fires
    await vi.advanceTimersByTimeAsync(999);
    expect(server.conns.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await vi.waitFor(() => expect(delays).toEqual([1000, 2000]));
    await vi.advanceTimersByTimeAsync(2000);
    await vi.waitFor(() => expect(delays).toEqual([1000, 2000, 3000]));
    await vi.advanceTimersByTimeAsync(3000);
    await vi.waitFor(() => expect(c.state).toBe('ready'));
    const hello = (await server.connection(3)).hello;
    expect(hello.since).toBe(10_000_000n - 5_000_000n);
    expect(hello.epoch).toBe(server.epoch);
    // A success resets the attempts: the next loss waits the first delay again.
    (await server.connection(3)).socket.destroy();
    await vi.waitFor(() => expect(delays).toEqual([1000, 2000, 3000, 1000]));
  });

  it('client - a strategy returning null closes the client and fails what is queued', async () => {
    const c = client({ reconnect: () => null });
    await c.connect();
    server.onHello = (conn) => conn.socket.destroy();
    server.dropAll();
    await vi.waitFor(() => expect(c.state).toBe('closed'));
    await expect(c.publish('k', 'v')).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
  });

  it('client - garbage from the server drops the connection and the client reconnects', async () => {
    const c = client({ reconnect: () => 0 });
    await c.connect();
    const conn = await server.connection(0);
    conn.send(Buffer.from([0, 0, 0, 2, 0x7f, 0x00]));
    await server.connection(1);
    await vi.waitFor(() => expect(c.state).toBe('ready'));
  });

  it('client - a silent server is detected by the ping timeout: dropped two ping intervals after it was last heard (fake timers, K3)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let pinged: () => void = () => undefined;
    server.onFrame = (_conn, f) => {
      if (f.kind === FrameKind.Ping) pinged(); // and never answers
    };
    const c = client({ pingIntervalMs: 1000, reconnect: () => 60_000 });
    const reasons: string[] = [];
    c.on('disconnect', (e) => reasons.push(e.code));
    await c.connect();
    const firstPing = new Promise<void>((r) => {
      pinged = r;
    });
    await vi.advanceTimersByTimeAsync(1000);
    await firstPing;
    await vi.advanceTimersByTimeAsync(999);
    expect(c.state).toBe('ready');
    const dropped = new Promise((r) => c.once('disconnect', r));
    await vi.advanceTimersByTimeAsync(1);
    await dropped;
    expect(reasons).toEqual(['GOSSIP_ERR_TIMEOUT']);
  });

  it('client - a server that answers every ping keeps the connection (fake timers, K3)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Ping) return;
      conn.send(conn.enc.pong(f.nonce, BigInt(f.nonce)).take());
    };
    const c = client({ pingIntervalMs: 1000, reconnect: () => 60_000 });
    const reasons: string[] = [];
    c.on('disconnect', (e) => reasons.push(e.code));
    await c.connect();
    for (let n = 1; n <= 5; n++) {
      await vi.advanceTimersByTimeAsync(1000);
      // The pong's newestTs moves lastTs: the sign that the client read it.
      while (c.lastTs !== BigInt(n)) await new Promise((r) => setImmediate(r));
    }
    expect(reasons).toEqual([]);
    expect(c.state).toBe('ready');
  });
});

describe('client publish', () => {
  it('client - publish resolves with the ack; stale and error acks map to results and coded errors', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Publish) return;
      if (f.id === 'stale') conn.send(conn.enc.ack(f.reqId, AckStatus.Stale, Durability.None).take());
      else if (f.id === 'big')
        conn.send(
          conn.enc.ack(f.reqId, AckStatus.Error, Durability.None, 'GOSSIP_ERR_DATA_TOO_LARGE', 'too big').take(),
        );
      else conn.send(conn.enc.ack(f.reqId, AckStatus.Accepted, Durability.Synced).take());
    };
    const c = client();
    await c.connect();
    expect(await c.publish('a', 'x', { ts: 5n })).toEqual({
      status: 'accepted',
      durability: 'synced',
      ts: 5n,
      retried: false,
    });
    expect((await c.publish('stale', 'x')).status).toBe('stale');
    await expect(c.publish('big', 'x')).rejects.toMatchObject({ code: 'GOSSIP_ERR_DATA_TOO_LARGE' });
  });

  it('client - publish checks ids and sizes locally with coded errors, and an empty value is refused', async () => {
    const c = client();
    await c.connect();
    await expect(c.publish('', 'x')).rejects.toMatchObject({ code: 'GOSSIP_ERR_ID_EMPTY' });
    await expect(c.publish('x'.repeat(257), 'x')).rejects.toMatchObject({ code: 'GOSSIP_ERR_ID_TOO_LONG' });
    await expect(c.publish('k', 'x'.repeat(1025))).rejects.toMatchObject({ code: 'GOSSIP_ERR_DATA_TOO_LARGE' });
    await expect(c.publish('k', '')).rejects.toMatchObject({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' });
  });

  it('client - publishes while disconnected wait in the queue, in order, and go out after the reconnect', async () => {
    const { gate, release } = latch();
    const c = client({ reconnect: () => 0 });
    await c.connect();
    server.onHello = (conn) => void gate.then(() => server.welcome(conn, true));
    server.dropAll();
    await vi.waitFor(() => expect(c.state).toBe('reconnecting'));
    const results = [c.publish('q', '1', { ts: 1n }), c.publish('q', '2', { ts: 2n }), c.delete('q', { ts: 3n })];
    expect(c.queued).toBe(3);
    release();
    const done = await Promise.all(results);
    expect(done.map((r: PublishResult) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
    const sent = (await server.connection(1)).frames.filter((f) => f.kind === FrameKind.Publish);
    expect(sent.map((f) => (f.kind === FrameKind.Publish ? f.ts : 0n))).toEqual([1n, 2n, 3n]);
    expect(c.queued).toBe(0);
  });

  it('client - the offline queue refuses past its count and byte caps with GOSSIP_ERR_QUEUE_FULL', async () => {
    const c = client({ reconnect: () => 60_000, maxQueue: 2, maxQueueBytes: 10 });
    const small = client({ reconnect: () => 60_000, maxQueueBytes: 6 });
    await c.connect();
    await small.connect();
    server.onHello = () => undefined;
    server.dropAll();
    await vi.waitFor(() => expect([c.state, small.state]).toEqual(['reconnecting', 'reconnecting']));
    const held = [c.publish('a', '1234'), c.publish('b', '1234'), small.publish('a', '1234')];
    for (const p of held) p.catch(() => undefined);
    await expect(c.publish('c', '1')).rejects.toMatchObject({ code: 'GOSSIP_ERR_QUEUE_FULL' });
    expect(c.queued).toBe(2);
    await expect(small.publish('b', '1234')).rejects.toMatchObject({ code: 'GOSSIP_ERR_QUEUE_FULL' });
    expect(small.queued).toBe(1);
    await c.close({ timeoutMs: 10 });
    await small.close({ timeoutMs: 10 });
    for (const p of held) await expect(p).rejects.toMatchObject({ code: 'GOSSIP_ERR_CLIENT_CLOSED' });
  });

  it('client - a publish in flight during a disconnect is sent again and marked retried', async () => {
    let first = true;
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Publish) return;
      if (first) {
        first = false;
        conn.socket.destroy(); // lost before the ack
        return;
      }
      conn.send(conn.enc.ack(f.reqId, AckStatus.Stale, Durability.None).take());
    };
    const c = client({ reconnect: () => 0 });
    await c.connect();
    const r = await c.publish('k', 'v', { ts: 7n });
    expect(r).toMatchObject({ status: 'stale', retried: true, ts: 7n });
  });

  it('client - an unacked publish times out with GOSSIP_ERR_TIMEOUT', async () => {
    server.onFrame = () => undefined;
    const c = client({ publishTimeoutMs: 30 });
    await c.connect();
    await expect(c.publish('k', 'v')).rejects.toMatchObject({ code: 'GOSSIP_ERR_TIMEOUT' });
  });

  it('client - publishes in flight time out each at its own deadline, oldest first; acked ones resolve', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Publish && f.id.startsWith('ok')) conn.send(conn.enc.ack(f.reqId, 0, 1).take());
    };
    const c = client({ publishTimeoutMs: 40 });
    await c.connect();
    const order: string[] = [];
    const track = (name: string, p: Promise<unknown>) =>
      p.then(
        () => order.push(`${name} acked`),
        (e: { code: string }) => order.push(`${name} ${e.code}`),
      );
    const first = [track('a', c.publish('a', 'v')), track('ok1', c.publish('ok1', 'v'))];
    await new Promise((r) => setTimeout(r, 20));
    const later = [track('b', c.publish('b', 'v')), track('ok2', c.publish('ok2', 'v'))];
    await Promise.all([...first, ...later]);
    expect(order.filter((o) => !o.startsWith('ok'))).toEqual(['a GOSSIP_ERR_TIMEOUT', 'b GOSSIP_ERR_TIMEOUT']);
    expect(order).toContain('ok1 acked');
    expect(order).toContain('ok2 acked');
    // Nothing left in flight: a publish after them is acked as usual.
    await expect(c.publish('ok3', 'v')).resolves.toMatchObject({ status: 'accepted' });
  });

  it('client - a queued publish can be aborted', async () => {
    const c = client({ reconnect: () => 60_000 });
    await c.connect();
    server.onHello = () => undefined;
    server.dropAll();
    await vi.waitFor(() => expect(c.state).toBe('reconnecting'));
    const ac = new AbortController();
    const p = c.publish('k', 'v', { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });
    expect(c.queued).toBe(0);
  });

  it('client - close waits for acks in flight', async () => {
    const pending: (() => void)[] = [];
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Publish) pending.push(() => conn.send(conn.enc.ack(f.reqId, 0, 1).take()));
    };
    const c = client();
    await c.connect();
    const p = c.publish('k', 'v');
    await vi.waitFor(() => expect(pending.length).toBe(1));
    const closing = c.close({ timeoutMs: 5_000 });
    pending[0]?.();
    expect((await p).status).toBe('accepted');
    await closing;
    expect(c.state).toBe('closed');
  });
});

describe('client messages', () => {
  it('client - lastTs follows persisted messages, not transient ones, and replay-done and idle pongs advance it', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind === FrameKind.Ping) conn.send(conn.enc.pong(f.nonce, 900n).take());
    };
    const c = client({ pingIntervalMs: 20 });
    server.onHello = (conn) => {
      server.welcomeThen(conn, (enc) =>
        enc.message(MessageFlags.Replayed, 'a', 100n, Buffer.from('x')).replayDone(1, 200n, false),
      );
    };
    await c.connect();
    expect(c.lastTs).toBe(200n);
    const conn = await server.connection(0);
    conn.send(conn.enc.message(MessageFlags.Transient, 't', 500n, Buffer.from('x')).take());
    conn.send(conn.enc.message(0, 'p', 300n, Buffer.from('x')).take());
    await vi.waitFor(() => expect(c.lastTs).toBe(900n));
  });

  it('client - a payload the codec cannot decode is an error event, not a crash', async () => {
    const c = client();
    const errors: string[] = [];
    const seen: string[] = [];
    c.on('error', (e) => errors.push(e.code));
    c.on('message', (m) => seen.push(m.id));
    await c.connect();
    const conn = await server.connection(0);
    conn.send(
      conn.enc
        .message(0, 'bad', 1n, Buffer.from([0xff]))
        .message(0, 'good', 2n, Buffer.from('ok'))
        .take(),
    );
    await vi.waitFor(() => expect(seen).toEqual(['good']));
    expect(errors).toEqual(['GOSSIP_ERR_DECODE']);
    expect(c.lastTs).toBe(2n);
  });

  it('client - messages() iterates in order, ends on abort, and fails past its buffer', async () => {
    const c = client();
    await c.connect();
    const conn = await server.connection(0);
    const ac = new AbortController();
    const it1 = c.messages({ signal: ac.signal });
    conn.send(conn.enc.message(0, 'a', 1n, Buffer.from('1')).message(0, 'b', 2n, Buffer.from('2')).take());
    const got: string[] = [];
    for await (const m of it1) {
      got.push(`${m.id}=${m.value}`);
      if (got.length === 2) ac.abort();
    }
    expect(got).toEqual(['a=1', 'b=2']);
    const small = c.messages({ bufferSize: 2 });
    let arrived = 0;
    c.on('message', () => arrived++);
    for (let i = 0; i < 3; i++) conn.send(conn.enc.message(0, `x${i}`, BigInt(10 + i), Buffer.from('v')).take());
    await vi.waitFor(() => expect(arrived).toBe(3));
    const drained: string[] = [];
    await expect(async () => {
      for await (const m of small) drained.push(m.id);
    }).rejects.toMatchObject({ code: 'GOSSIP_ERR_QUEUE_FULL' });
    expect(drained).toEqual(['x0', 'x1']);
  });
});

describe('state view', () => {
  it('state view - newest ts wins, tombstones delete, transient is ignored unless asked', async () => {
    const c = client();
    const view = new GossipState(c);
    const withTransient = new GossipState(c, { transient: true });
    const changes: [string, string | undefined, string | undefined][] = [];
    view.on('change', (id, e, prev) => changes.push([id, e?.value, prev?.value]));
    await c.connect();
    const conn = await server.connection(0);
    conn.send(
      conn.enc
        .message(0, 'a', 10n, Buffer.from('1'))
        .message(0, 'a', 5n, Buffer.from('old'))
        .message(0, 'a', 20n, Buffer.from('2'))
        .message(MessageFlags.Transient, 'a', 30n, Buffer.from('tr'))
        .message(0, 'b', 1n, Buffer.from('b'))
        .message(0, 'b', 2n, Buffer.alloc(0))
        .message(0, 'b', 1n, Buffer.from('resurrect?'))
        .take(),
    );
    await vi.waitFor(() => expect(changes.length).toBe(4));
    expect(changes).toEqual([
      ['a', '1', undefined],
      ['a', '2', '1'],
      ['b', 'b', undefined],
      ['b', undefined, 'b'],
    ]);
    expect(view.toMap()).toEqual(new Map([['a', '2']]));
    expect(withTransient.get('a')).toBe('tr');
  });

  it('state view - a resync snapshot replaces what it held and drops ids it did not contain', async () => {
    const c = client({ reconnect: () => 0 });
    const view = new GossipState(c);
    await c.connect();
    const conn = await server.connection(0);
    conn.send(
      conn.enc
        .message(0, 'keep', 100n, Buffer.from('old'))
        .message(0, 'gone', 100n, Buffer.from('x'))
        .message(0, 'newer-here', 900n, Buffer.from('from-another-log'))
        .take(),
    );
    await vi.waitFor(() => expect(view.size).toBe(3));
    server.onHello = (next) => {
      server.welcomeThen(next, (enc) =>
        enc
          .resync(ResyncReason.Epoch, null)
          .message(MessageFlags.Replayed, 'keep', 50n, Buffer.from('new'))
          .message(MessageFlags.Replayed, 'newer-here', 60n, Buffer.from('truth'))
          .replayDone(2, 60n, true),
      );
    };
    const resyncs: string[] = [];
    c.on('resync', (r) => resyncs.push(r.reason));
    conn.socket.destroy();
    await vi.waitFor(() => expect(resyncs).toEqual(['epoch']));
    await vi.waitFor(() =>
      expect(view.toMap()).toEqual(
        new Map([
          ['keep', 'new'],
          ['newer-here', 'truth'],
        ]),
      ),
    );
    expect(c.lastTs).toBe(60n);
  });
});

describe('state view made late', () => {
  it('state view - made after connect() it catches up over a second connection: a full-snapshot hello, fed to it alone, closed at replay-done', async () => {
    const { gate, release } = latch();
    const replayed = MessageFlags.Replayed;
    server.onHello = (conn) => {
      if (server.conns.length === 1) return server.welcome(conn, true);
      // The view's connection: a snapshot taken before the live changes below, held back in part.
      server.welcomeThen(conn, (enc) =>
        enc.resync(ResyncReason.Full, null).message(replayed, 'a', 10n, Buffer.from('a1')),
      );
      void gate.then(() =>
        conn.send(
          conn.enc
            .message(replayed, 'b', 10n, Buffer.from('b1'))
            .message(replayed, 'c', 10n, Buffer.from('c1'))
            .replayDone(3, 10n, true)
            .take(),
        ),
      );
    };
    const c = client();
    await c.connect();
    const main = await server.connection(0);
    const seen: string[] = [];
    c.on('message', (m) => seen.push(`${m.id}@${m.ts}`));
    const view = new GossipState(c);
    expect(view.catchingUp).toBe(true);
    const extra = await server.connection(1);
    expect(extra.hello).toMatchObject({ since: MIN_TS, epoch: null, echo: false });
    await vi.waitFor(() => expect(view.get('a')).toBe('a1'));
    // While it catches up: b deleted, c updated, d added, live on the client's connection.
    main.send(
      main.enc
        .message(0, 'b', 20n, Buffer.alloc(0))
        .message(0, 'c', 30n, Buffer.from('c2'))
        .message(0, 'd', 25n, Buffer.from('d1'))
        .take(),
    );
    await vi.waitFor(() => expect(seen).toEqual(['b@20', 'c@30', 'd@25']));
    const synced = new Promise<void>((r) => view.once('synced', r));
    release();
    await synced;
    expect(view.catchingUp).toBe(false);
    expect(view.toMap()).toEqual(
      new Map([
        ['a', 'a1'],
        ['c', 'c2'],
        ['d', 'd1'],
      ]),
    );
    // The snapshot went to the view alone, and its connection is closed.
    expect(seen).toEqual(['b@20', 'c@30', 'd@25']);
    if (!extra.socket.closed) await once(extra.socket, 'close');
    expect(server.conns.length).toBe(2);
    main.send(main.enc.message(0, 'a', 40n, Buffer.alloc(0)).take());
    await vi.waitFor(() => expect(view.has('a')).toBe(false));
  });

  it('state view - made after connect() on a since now client it follows live messages only, with no extra connection', async () => {
    const c = client({ since: 'now' });
    await c.connect();
    const view = new GossipState(c);
    await new Promise<void>((r) => view.once('synced', r));
    const main = await server.connection(0);
    main.send(main.enc.message(0, 'k', 5n, Buffer.from('v')).take());
    await vi.waitFor(() => expect(view.get('k')).toBe('v'));
    expect(server.conns.length).toBe(1);
  });

  it('state view - a late view’s catch-up retries on the client’s strategy; close() stops it and leaves no timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    server.onHello = (conn) => {
      if (server.conns.length === 1) server.welcome(conn, true);
      else if (server.conns.length === 2) conn.socket.destroy();
      // The third is never answered.
    };
    const c = client({ reconnect: () => 1000 });
    await c.connect();
    const view = new GossipState(c);
    await server.connection(1);
    // Dropped before its welcome, it waits the strategy's delay and tries again.
    await vi.waitFor(async () => {
      await vi.advanceTimersByTimeAsync(1000);
      expect(server.conns.length).toBe(3);
    });
    const third = await server.connection(2);
    expect(third.hello).toMatchObject({ since: MIN_TS, epoch: null });
    expect(view.catchingUp).toBe(true);
    await c.close();
    if (!third.socket.closed) await once(third.socket, 'close');
    expect(vi.getTimerCount()).toBe(0);
    expect(c.state).toBe('closed');
  });
});

describe('client reserved ts', () => {
  it('client - publish, delete and emit with ts -2^63 are refused locally with GOSSIP_ERR_TS_RESERVED, nothing sent (P4)', async () => {
    const c = client();
    await c.connect();
    const conn = await server.connection(0);
    const code = { code: 'GOSSIP_ERR_TS_RESERVED' };
    await expect(c.publish('k', 'v', { ts: MIN_TS })).rejects.toMatchObject(code);
    await expect(c.delete('k', { ts: MIN_TS })).rejects.toMatchObject(code);
    expect(() => c.emit('k', 'v', { ts: MIN_TS })).toThrow(expect.objectContaining(code));
    // The next publish is the first frame after the hello the server sees.
    await c.publish('k', 'v', { ts: MIN_TS + 1n });
    expect(conn.frames.map((f) => f.kind)).toEqual([FrameKind.Hello, FrameKind.Publish]);
    expect(conn.frames[1]).toMatchObject({ ts: MIN_TS + 1n });
  });
});

describe('client ts', () => {
  const bad: [string, unknown][] = [
    ['2^63', 2n ** 63n],
    ['-2^63-1', MIN_TS - 1n],
    ['a number', 5],
  ];

  it('client - a ts outside int64 or not a bigint is refused locally with GOSSIP_ERR_INVALID_ARGUMENT, leaving nothing in flight', async () => {
    const c = client();
    await c.connect();
    const conn = await server.connection(0);
    const code = { code: 'GOSSIP_ERR_INVALID_ARGUMENT' };
    for (const [name, ts] of bad) {
      await expect(c.publish('k', 'v', { ts: ts as bigint }), name).rejects.toMatchObject(code);
      await expect(c.delete('k', { ts: ts as bigint }), name).rejects.toMatchObject(code);
      expect(() => c.emit('k', 'v', { ts: ts as bigint }), name).toThrow(expect.objectContaining(code));
    }
    await c.publish('k', 'v', { ts: 1n });
    expect(conn.frames.map((f) => f.kind)).toEqual([FrameKind.Hello, FrameKind.Publish]);
    // Nothing in flight: close() has nothing to wait for.
    const closing = c.close({ timeoutMs: 60_000 });
    expect(c.state).toBe('closed');
    await closing;
  });

  it('client - a bad ts before connect() or while reconnecting is refused at once; connect() and the reconnect still settle', async () => {
    const c = client({ queueBeforeConnect: true, reconnect: () => 0 });
    const code = { code: 'GOSSIP_ERR_INVALID_ARGUMENT' };
    for (const [name, ts] of bad) {
      await expect(c.publish('k', 'v', { ts: ts as bigint }), name).rejects.toMatchObject(code);
      await expect(c.delete('k', { ts: ts as bigint }), name).rejects.toMatchObject(code);
    }
    expect(c.queued).toBe(0);
    await c.connect();
    const { gate, release } = latch();
    server.onHello = (conn) => void gate.then(() => server.welcome(conn, true));
    server.dropAll();
    await vi.waitFor(() => expect(c.state).toBe('reconnecting'));
    for (const [name, ts] of bad)
      await expect(c.publish('k', 'v', { ts: ts as bigint }), name).rejects.toMatchObject(code);
    const good = c.publish('k', 'v', { ts: 2n });
    expect(c.queued).toBe(1);
    release();
    expect((await good).status).toBe('accepted');
    expect(c.state).toBe('ready');
    const sent = (await server.connection(1)).frames.filter((f) => f.kind === FrameKind.Publish);
    expect(sent.map((f) => (f.kind === FrameKind.Publish ? f.ts : 0n))).toEqual([2n]);
  });
});

/** Answers each fetch as gossipd does (Q2): each distinct id once, at its first mention, from `values`. */
function answerFetches(values: Record<string, string>, fetches: FetchFrame[] = []) {
  server.onFrame = (conn, f) => {
    if (f.kind !== FrameKind.Fetch) return;
    fetches.push(f);
    const entries: FetchEntry[] = [...new Set(f.ids)].map((id) =>
      id in values ? { id, found: true, ts: 7n, data: Buffer.from(values[id] as string) } : { id, found: false },
    );
    // Two frames when there are entries enough, so the parts are joined too.
    const half = Math.ceil(entries.length / 2);
    if (entries.length > 1) conn.enc.fetchResult(f.reqId, true, entries.slice(0, half));
    conn.send(conn.enc.fetchResult(f.reqId, false, entries.length > 1 ? entries.slice(half) : entries).take());
  };
  return fetches;
}

describe('client fetch', () => {
  it('client - fetch returns one result per requested id in request order, repeats included, sending each id once (Q2)', async () => {
    const fetches = answerFetches({ a: 'A', b: 'B' });
    const c = client();
    await c.connect();
    const results = await c.fetch(['a', 'zz', 'a', 'b', 'a']);
    expect(results).toEqual([
      { id: 'a', found: true, ts: 7n, deleted: false, value: 'A' },
      { id: 'zz', found: false },
      { id: 'a', found: true, ts: 7n, deleted: false, value: 'A' },
      { id: 'b', found: true, ts: 7n, deleted: false, value: 'B' },
      { id: 'a', found: true, ts: 7n, deleted: false, value: 'A' },
    ]);
    // A result per mention, not one object shared by them.
    expect(results[0]).not.toBe(results[2]);
    expect(fetches.map((f) => f.ids)).toEqual([['a', 'zz', 'b']]);
  });

  it('client - more distinct ids than the welcome maxFetchIds go as several fetches, joined in order (Q1)', async () => {
    server.maxFetchIds = 2;
    const fetches = answerFetches({ a: 'A', c: 'C', e: 'E' });
    const c = client();
    await c.connect();
    const ids = ['a', 'b', 'a', 'c', 'd', 'e', 'b'];
    const results = await c.fetch(ids);
    expect(results.map((r) => [r.id, r.found])).toEqual(ids.map((id) => [id, ['a', 'c', 'e'].includes(id)]));
    expect(fetches.map((f) => f.ids)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    expect(new Set(fetches.map((f) => f.reqId)).size).toBe(3);
  });

  it('client - without maxFetchIds in the welcome, a fetch of distinct ids goes as one fetch', async () => {
    const fetches = answerFetches({});
    const c = client();
    await c.connect();
    const ids = Array.from({ length: 300 }, (_, n) => `id${n}`);
    expect((await c.fetch(ids)).map((r) => r.id)).toEqual(ids);
    expect(fetches.length).toBe(1);
  });

  it('client - an error ack for a fetch after some of its results fails the fetch with the code (Q3)', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Fetch) return;
      conn.enc.fetchResult(f.reqId, true, [{ id: 'a', found: false }]);
      conn.enc.ack(f.reqId, AckStatus.Error, Durability.None, 'GOSSIP_ERR_INTERNAL', 'bad record');
      conn.send(conn.enc.take());
    };
    const c = client();
    await c.connect();
    await expect(c.fetch(['a', 'b'])).rejects.toMatchObject({ code: 'GOSSIP_ERR_INTERNAL' });
  });

  it('client - a fetch is also cut at the welcome maxFrameBytes, each frame within it, joined in order (Q1)', async () => {
    // The fault server's welcome says maxFrameBytes 65,536; 1,000 ids of 243+ UTF-8 bytes are ~250 KB.
    const fetches = answerFetches({});
    const c = client();
    await c.connect();
    const ids = Array.from({ length: 1000 }, (_, n) => `${'é'.repeat(120)}${n}`);
    const results = await c.fetch([...ids, ids[0] as string]);
    expect(results.map((r) => r.id)).toEqual([...ids, ids[0]]);
    expect(fetches.flatMap((f) => f.ids)).toEqual(ids);
    expect(fetches.length).toBeGreaterThanOrEqual(4);
    for (const f of fetches) {
      const frameBytes = 4 + 1 + 4 + 2 + f.ids.reduce((n, id) => n + 2 + Buffer.byteLength(id), 0);
      expect(frameBytes).toBeLessThanOrEqual(64 * 1024);
    }
  });

  it('client - a fetched value the codec cannot decode fails the fetch with GOSSIP_ERR_DECODE and its cause', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Fetch) return;
      conn.send(
        conn.enc.fetchResult(f.reqId, false, [{ id: 'k', found: true, ts: 7n, data: Buffer.from('{nope') }]).take(),
      );
    };
    const c = new GossipClient<unknown>({ address: server.address, codec: jsonCodec() });
    clients.push(c as unknown as GossipClient<string>);
    await c.connect();
    const error = await c.fetch('k').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'GOSSIP_ERR_DECODE' });
    expect((error as Error).cause).toBeInstanceOf(SyntaxError);
  });

  it('client - fetch with an already-aborted signal rejects at once with GOSSIP_ERR_ABORTED and sends nothing', async () => {
    const fetches = answerFetches({ k: 'v' });
    const ac = new AbortController();
    ac.abort();
    const early = client({ queueBeforeConnect: true });
    await expect(early.fetch('k', { signal: ac.signal })).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });
    const c = client();
    await c.connect();
    await expect(c.fetch('k', { signal: ac.signal })).rejects.toMatchObject({ code: 'GOSSIP_ERR_ABORTED' });
    expect(await c.fetch('k')).toMatchObject([{ id: 'k', value: 'v' }]);
    expect(fetches.length).toBe(1);
  });

  it('client - repeated ids in a fetch get values decoded separately, not one shared object', async () => {
    answerFetches({ a: '{"n":1}' });
    const c = new GossipClient<{ n: number }>({ address: server.address, codec: jsonCodec() });
    clients.push(c as unknown as GossipClient<string>);
    await c.connect();
    const [first, second] = await c.fetch(['a', 'a']);
    expect(first?.value).toEqual({ n: 1 });
    expect(second?.value).toEqual({ n: 1 });
    expect(first?.value).not.toBe(second?.value);
  });
});

describe('client open values', () => {
  // docs/PROTOCOL.md, "Open values": a newer server may add values to these fields; a
  // client of today takes them instead of closing the connection as on a malformed frame.
  it('client open values - a durability, a resync reason, an error code and message flags it does not know', async () => {
    server.onFrame = (conn, f) => {
      if (f.kind !== FrameKind.Publish) return;
      if (f.id === 'new-level') conn.send(conn.enc.ack(f.reqId, AckStatus.Accepted, 7 as Durability).take());
      else {
        // an error ack whose code number (0x7fff) no version knows yet
        const ack = Buffer.from([0, 0, 0, 9, FrameKind.Ack, 0, 0, 0, 0, AckStatus.Error, Durability.None, 0x7f, 0xff]);
        ack.writeUInt32BE(f.reqId, 5);
        conn.send(ack);
      }
    };
    const c = client({ reconnect: () => 0 });
    const view = new GossipState(c);
    await c.connect();
    expect(await c.publish('new-level', 'x', { ts: 5n })).toEqual({
      status: 'accepted',
      durability: 'unknown',
      ts: 5n,
      retried: false,
    });
    const conn = await server.connection(0);
    // an error code number from a newer server: GOSSIP_ERR_UNKNOWN, the connection stays
    await expect(c.publish('odd-code', 'x')).rejects.toMatchObject({ code: 'GOSSIP_ERR_UNKNOWN' });
    // flag bits it does not know are ignored: the message comes, transient as its known bit says
    const seen = new Promise<ClientMessage<string>>((resolve) => c.on('message', resolve));
    conn.send(conn.enc.message(0x80 | MessageFlags.Transient, 'presence/a', 6n, Buffer.from('on')).take());
    expect(await seen).toMatchObject({ id: 'presence/a', value: 'on', transient: true, replayed: false });
    const resyncs: string[] = [];
    c.on('resync', (r) => resyncs.push(r.reason));
    server.onHello = (next) =>
      server.welcomeThen(next, (enc) =>
        enc
          .resync(9 as ResyncReason, null)
          .message(MessageFlags.Replayed, 'kept', 50n, Buffer.from('v'))
          .replayDone(1, 50n, true),
      );
    conn.socket.destroy();
    await vi.waitFor(() => expect(resyncs).toEqual(['unknown']));
    await vi.waitFor(() => expect(view.toMap()).toEqual(new Map([['kept', 'v']])));
    expect(c.state).toBe('ready');
  });
});

describe('client addresses', () => {
  // Several addresses: gossipd processes that serve one log (a cluster's edges), tried in turn.
  it('client addresses - a first connect tries each address once, at once: it connects to the one that answers', async () => {
    // a peer that takes each connection and closes it: how often it was tried is counted
    const dropper = createServer((s) => s.destroy()).listen(0, '127.0.0.1');
    await once(dropper, 'listening');
    let tries = 0;
    dropper.on('connection', () => tries++);
    try {
      const strategy = vi.fn(() => 10);
      const c = client({
        address: [`127.0.0.1:${(dropper.address() as AddressInfo).port}`, server.address],
        reconnect: strategy,
      });
      const events: string[] = [];
      c.on('reconnecting', () => events.push('reconnecting'));
      const connected = new Promise<{ address: string }>((resolve) => c.on('connect', resolve));
      await c.connect();
      expect((await connected).address).toBe(server.address);
      expect(c.state).toBe('ready');
      expect(tries).toBe(1);
      expect(events).toEqual([]);
      expect(strategy).not.toHaveBeenCalled();
    } finally {
      dropper.close();
    }
  });

  it("client addresses - a server's refusal in the first round is what connect() fails with, not another address's I/O error", async () => {
    server.onHello = (conn) => {
      conn.send(conn.enc.error('GOSSIP_ERR_UNAUTHORIZED', 'the token is not valid').take());
      conn.socket.end();
    };
    const dead = await closedPort();
    for (const address of [
      [server.address, `127.0.0.1:${dead}`],
      [`127.0.0.1:${dead}`, server.address],
    ]) {
      const c = client({ address });
      await expect(c.connect()).rejects.toMatchObject({ code: 'GOSSIP_ERR_UNAUTHORIZED' });
      expect(c.state).toBe('closed');
    }
  });

  it('client addresses - a drop of a working connection tries the same address first: a quick restart is not a move', async () => {
    const other = await FaultServer.start();
    try {
      const c = client({ address: [server.address, other.address], reconnect: () => 10 });
      const addresses: string[] = [];
      c.on('connect', (info) => addresses.push(info.address));
      await c.connect();
      (await server.connection(0)).socket.destroy();
      await server.connection(1);
      await vi.waitFor(() => expect(addresses).toEqual([server.address, server.address]));
      expect(other.conns).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it('client addresses - a first connect fails with the last reason once every address failed, leaving nothing running', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const c = client({ address: [`127.0.0.1:${a}`, `127.0.0.1:${b}`] });
    await expect(c.connect()).rejects.toMatchObject({
      code: 'GOSSIP_ERR_IO',
      message: expect.stringContaining(`:${b}`),
    });
    expect(c.state).toBe('closed');
  });

  it('client addresses - a drop moves the client to the next edge, with its since, epoch and queued publish', async () => {
    const other = await FaultServer.start();
    try {
      other.epoch = server.epoch; // two edges of one cluster share the log's identity
      const c = client({ address: [server.address, other.address], reconnect: () => 10, replayDeltaMs: 0 });
      await c.connect();
      const first = await server.connection(0);
      first.send(first.enc.message(0, 'k', 500n, Buffer.from('v')).take());
      await vi.waitFor(() => expect(c.lastTs).toBe(500n));
      const moved = new Promise<void>((resolve) =>
        c.on('reconnecting', (info) => info.address === other.address && resolve()),
      );
      // the first edge goes away: its address is tried again once, then the next one
      await server.close();
      await moved;
      const published = c.publish('during', 'x');
      const next = await other.connection(0);
      expect(next.hello).toMatchObject({ since: 500n, epoch: server.epoch });
      expect(await published).toMatchObject({ status: 'accepted' });
      expect(next.frames.some((f) => f.kind === FrameKind.Publish && f.id === 'during')).toBe(true);
      expect(server.conns).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it('client addresses - a token with gossips:// and gossip:// addresses mixed is refused: it would go in the clear', () => {
    expect(() => new GossipClient({ address: ['gossips://127.0.0.1:1', 'gossip://127.0.0.1:2'], token: 't' })).toThrow(
      expect.objectContaining({
        code: 'GOSSIP_ERR_INVALID_ARGUMENT',
        message: expect.stringContaining('in the clear'),
      }),
    );
    expect(() => new GossipClient({ address: ['gossips://127.0.0.1:1', 'gossip://127.0.0.1:2'] })).not.toThrow();
    expect(() => new GossipClient({ address: ['gossip://127.0.0.1:1', '127.0.0.1:2'], token: 't' })).not.toThrow();
  });

  it('client addresses - an empty list or an address that does not parse is refused by the constructor', () => {
    expect(() => new GossipClient({ address: [] })).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
    expect(() => new GossipClient({ address: ['127.0.0.1:1', 'nope:port'] })).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT' }),
    );
    expect(() => new GossipClient({ address: ['127.0.0.1:1', 7420 as unknown as string] })).toThrow(
      expect.objectContaining({ code: 'GOSSIP_ERR_INVALID_ARGUMENT', message: 'every address must be a string' }),
    );
  });
});

describe('client addresses and late views', () => {
  it('client addresses - a view made late catches up from the address the client is on, not the first', async () => {
    const first = await FaultServer.start();
    try {
      first.onHello = (conn) => conn.socket.destroy(); // down when the client connects
      const c = client({ address: [first.address, server.address], reconnect: () => 10 });
      await c.connect();
      const triedFirst = first.conns.length;
      first.onHello = (conn) => first.welcome(conn, true); // back up: a catch-up going there would be answered
      const view = new GossipState(c);
      await new Promise<void>((resolve) => view.once('synced', () => resolve()));
      expect(server.conns).toHaveLength(2);
      expect(server.conns[1]?.hello.epoch).toBeNull();
      expect(first.conns).toHaveLength(triedFirst);
    } finally {
      await first.close();
    }
  });
});
