import {
  AckStatus,
  Durability,
  type ErrorCode,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  GossipError,
  type HelloFrame,
  LegacyEncoder,
  LegacyKind,
  MAX_ID_BYTES,
  MessageFlags,
  MIN_TS,
  PROTOCOL_VERSION,
  ResyncReason,
} from '@gossip/protocol';
import type { AppendResult, Store } from '@gossip/store';
import { describe, expect, it } from 'vitest';
import { TokenSet } from '../src/auth.js';
import { resyncReason } from '../src/connection.js';
import type { Origin, Publication, Publisher, ResolvedOptions, ServerContext } from '../src/context.js';
import { onEmit } from '../src/handlers/emit.js';
import { FetchQueue, onFetch } from '../src/handlers/fetch.js';
import { onHello } from '../src/handlers/hello.js';
import { onPing } from '../src/handlers/ping.js';
import { onPublish, settlePublish } from '../src/handlers/publish.js';
import type { ReadHold } from '../src/read-gate.js';
import type { PrefixSet, Session } from '../src/session.js';
import { Tick, type TickMessages, withoutOrigin } from '../src/tick.js';
import { tempStores, testContext } from './contexts.js';

/*
 * The handlers behind their seam: each is driven through a fake session (src/session.ts)
 * and a context over a real store and a real tick (src/tick.ts), with no socket and no
 * server. What reaches the client is what the session was given, decoded.
 */

const openStore = tempStores('gossip-handlers-');

/** A context over `store` whose broadcasts and publishes go through `tick`. */
async function setup(options: Partial<ResolvedOptions> & { tokens?: string[]; maxDataBytes?: number } = {}) {
  const store = await openStore({ maxDataBytes: options.maxDataBytes ?? 1024 });
  let flushes = 0;
  const tick = new Tick(() => {
    flushes++;
  });
  const ctx = testContext(store, options, {
    tokens: new TokenSet(options.tokens ?? []),
    broadcast: (origin, transient, id, ts, data) => tick.broadcast(origin, transient, id, ts, data),
    stored: (publisher, f, stored) => tick.stored(publisher, f, stored),
  });
  return { store, tick, ctx, flushes: () => flushes };
}

/** A connection's prefixes as a handler sees them (PrefixSet): a set and a log. */
class FakePrefixes implements PrefixSet {
  readonly held = new Set<string>();
  readonly log: string[] = [];

  get size(): number {
    return this.held.size;
  }

  has(prefix: string): boolean {
    return this.held.has(prefix);
  }

  subscribe(prefix: string, since: bigint | null, epoch: string | null): void {
    this.held.add(prefix);
    this.log.push(`subscribe ${JSON.stringify(prefix)} ${since} ${epoch}`);
  }

  unsubscribe(prefix: string): void {
    this.held.delete(prefix);
    this.log.push(`unsubscribe ${JSON.stringify(prefix)}`);
  }
}

/** A session that records what a handler does to it. */
class FakeSession implements Session {
  readonly id = 7;
  readonly remote = '127.0.0.1:50000';
  readonly client = undefined;
  readonly name = undefined;
  echo = true;
  closed = false;
  readonly enc = new FrameEncoder();
  readonly out = { pendingBytes: 0, whenBelow: () => Promise.resolve() };
  readonly fetches: FetchQueue;
  /** The prefixes it holds, and what subscribe and unsubscribe did to them, in order. */
  readonly prefixes = new FakePrefixes();
  readonly fatals: [ErrorCode, string][] = [];
  readonly holds: string[] = [];
  touches = 0;
  inflight = 0;
  readonly publishing = {
    add: (bytes: number) => {
      this.inflight += bytes;
    },
    done: (bytes: number) => {
      this.inflight -= bytes;
    },
  };
  readonly #ctx: ServerContext;
  /** What the client would have read so far, decoded. */
  #received: Frame[] = [];
  readonly #decoder = new FrameDecoder((f) => this.#received.push(f));
  #waiting: { match: (f: Frame) => boolean; resolve: () => void } | undefined;

  constructor(ctx: ServerContext) {
    this.#ctx = ctx;
    this.fetches = new FetchQueue(this, ctx);
  }

  touch(): void {
    this.touches++;
  }

  ack(reqId: number, status: AckStatus, durability: Durability, code?: ErrorCode, message?: string): void {
    this.enc.ack(reqId, status, durability, code, message);
    this.touch();
  }

  send(frames: Buffer): void {
    this.#decoder.push(this.enc.take());
    this.#decoder.push(frames);
    this.touch();
    if (this.#waiting && this.#received.some(this.#waiting.match)) this.#waiting.resolve();
  }

  /** Resolves once a frame that `match`es has been sent (by `send`). */
  until(match: (f: Frame) => boolean): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting = { match, resolve };
    });
  }

  fatal(code: ErrorCode, message: string): void {
    this.fatals.push([code, message]);
    this.closed = true;
  }

  hold(reason: ReadHold): void {
    this.holds.push(`hold ${reason}`);
  }

  release(reason: ReadHold): void {
    this.holds.push(`release ${reason}`);
  }

  settled(f: Publication, result: AppendResult | undefined, error: unknown): void {
    settlePublish(this, this.#ctx, f, result, error);
  }

  /** Everything this session was given for its client so far, decoded, in order. */
  frames(): Frame[] {
    this.#decoder.push(this.enc.take());
    return this.#received.splice(0);
  }
}

const frame = {
  publish: (reqId: number, id: string, ts: bigint, data = 'x') =>
    ({ kind: FrameKind.Publish, reqId, id, ts, data: Buffer.from(data) }) as const,
  emit: (reqId: number, id: string, ts: bigint, data = 'x') =>
    ({ kind: FrameKind.Emit, reqId, id, ts, data: Buffer.from(data) }) as const,
  hello: (options: Partial<HelloFrame> = {}): HelloFrame => ({
    kind: FrameKind.Hello,
    version: PROTOCOL_VERSION,
    since: null,
    epoch: null,
    echo: true,
    name: undefined,
    token: undefined,
    prefixes: undefined,
    ...options,
  }),
};

/** The acks among `frames`, as [reqId, status, durability, code]. */
function acks(frames: Frame[]): [number, number, number, ErrorCode | null][] {
  return frames.flatMap((f) => (f.kind === FrameKind.Ack ? [[f.reqId, f.status, f.durability, f.code]] : [])) as [
    number,
    number,
    number,
    ErrorCode | null,
  ][];
}

/** A tick's messages, copied out of `Tick.flush`'s callback. */
interface Taken {
  bytes: Buffer;
  origins: Origin[];
  tss: bigint[];
  transient: boolean[];
}

/** Runs the tick's flush; returns a copy of its messages, undefined when there were none. */
function take(tick: Tick, inside?: (messages: TickMessages) => void): Taken | undefined {
  let taken: Taken | undefined;
  tick.flush((m) => {
    taken = {
      bytes: m.bytes,
      origins: m.origins.slice(0, m.count),
      tss: m.tss.slice(0, m.count),
      transient: m.transient.slice(0, m.count),
    };
    inside?.(m);
  });
  return taken;
}

/** The ids of the message frames in `bytes`, decoded. */
function messageIds(bytes: Buffer | undefined): string[] {
  const out: string[] = [];
  if (bytes) new FrameDecoder((f) => f.kind === FrameKind.Message && out.push(f.id)).push(bytes);
  return out;
}

/** Lets the store's promises settle: a write, a turn. */
async function settle(store: Store): Promise<void> {
  await store.flush();
  await new Promise((r) => setImmediate(r));
}

describe('handlers - limits (check.ts)', () => {
  it('handlers - a publish or emit over a limit gets an error ack for its reqId, and nothing is stored or broadcast', async () => {
    const { store, tick, ctx } = await setup({ maxSkewMs: 1 });
    const session = new FakeSession(ctx);
    const cases: [string, bigint, string, ErrorCode][] = [
      ['', 1n, 'x', 'GOSSIP_ERR_ID_EMPTY'],
      ['é'.repeat(129), 1n, 'x', 'GOSSIP_ERR_ID_TOO_LONG'],
      ['k', 1n, 'x'.repeat(1025), 'GOSSIP_ERR_DATA_TOO_LARGE'],
      ['k', MIN_TS, 'x', 'GOSSIP_ERR_TS_RESERVED'],
      ['k', 1_000_001n, 'x', 'GOSSIP_ERR_TS_AHEAD'],
    ];
    let reqId = 1;
    for (const [id, ts, data, code] of cases) {
      onPublish(session, ctx, frame.publish(reqId++, id, ts, data));
      onEmit(session, ctx, frame.emit(0, id, ts, data));
      expect(acks(session.frames()), code).toEqual([
        [reqId - 1, AckStatus.Error, Durability.None, code],
        [0, AckStatus.Error, Durability.None, code],
      ]);
    }
    // 256 bytes of UTF-8 are allowed, as an id of 85 three-byte characters is measured.
    onPublish(session, ctx, frame.publish(99, 'é'.repeat(MAX_ID_BYTES / 2), 5n));
    await settle(store);
    expect(messageIds(take(tick)?.bytes)).toEqual(['é'.repeat(MAX_ID_BYTES / 2)]);
    expect(acks(session.frames())).toEqual([[99, AckStatus.Accepted, Durability.Written, null]]);
    expect(ctx.stats.refused).toBe(2 * cases.length);
    expect(store.newestTs).toBe(5n);
    expect(session.fatals).toEqual([]);
  });

  it('handlers - a fetch over --max-fetch-ids or naming an empty or 257-byte id gets an error ack; the connection stays', async () => {
    const { ctx } = await setup({ maxFetchIds: 3 });
    const session = new FakeSession(ctx);
    onFetch(session, ctx, { kind: FrameKind.Fetch, reqId: 1, ids: ['a', 'b', 'c', 'd'] });
    onFetch(session, ctx, { kind: FrameKind.Fetch, reqId: 2, ids: ['a', ''] });
    onFetch(session, ctx, { kind: FrameKind.Fetch, reqId: 3, ids: ['x'.repeat(257)] });
    expect(acks(session.frames())).toEqual([
      [1, AckStatus.Error, Durability.None, 'GOSSIP_ERR_TOO_MANY_IDS'],
      [2, AckStatus.Error, Durability.None, 'GOSSIP_ERR_ID_EMPTY'],
      [3, AckStatus.Error, Durability.None, 'GOSSIP_ERR_ID_TOO_LONG'],
    ]);
    expect(session.fatals).toEqual([]);
    expect(ctx.stats.fetches).toBe(3);
  });
});

describe('handlers - through the session', () => {
  it('handlers - an accepted hello is welcomed with the limits check.ts enforces; a wrong version or token is fatal', async () => {
    const { store, ctx } = await setup({ maxFetchIds: 42, tokens: ['secret'] });
    const ok = new FakeSession(ctx);
    expect(onHello(ok, ctx, frame.hello({ token: 'secret' }))).toBe(true);
    const [welcome] = ok.frames();
    expect(welcome).toMatchObject({
      kind: FrameKind.Welcome,
      epoch: store.epoch,
      maxIdBytes: MAX_ID_BYTES,
      maxDataBytes: 1024,
      maxFetchIds: 42,
      server: 'gossipd/test',
    });
    const version = new FakeSession(ctx);
    expect(onHello(version, ctx, frame.hello({ version: 2, token: 'secret' }))).toBe(false);
    const token = new FakeSession(ctx);
    expect(onHello(token, ctx, frame.hello({ token: 'guess' }))).toBe(false);
    expect([...version.fatals, ...token.fatals].map(([code]) => code)).toEqual([
      'GOSSIP_ERR_UNSUPPORTED_VERSION',
      'GOSSIP_ERR_UNAUTHORIZED',
    ]);
    expect(version.frames()).toEqual([]);
    expect(ctx.stats.authFailures).toBe(1);
  });

  it('handlers - an emit is broadcast transient and acked only for a non-zero reqId; a ping gets the newest persisted ts', async () => {
    const { store, tick, ctx } = await setup();
    const session = new FakeSession(ctx);
    onPing(session, ctx, { kind: FrameKind.Ping, nonce: 1 });
    onEmit(session, ctx, frame.emit(0, 'e', 10n));
    onEmit(session, ctx, frame.emit(5, 'e', 11n));
    const messages = take(tick) as Taken;
    expect(messages.transient).toEqual([true, true]);
    expect(messages.origins).toEqual([session, session]);
    onPublish(session, ctx, frame.publish(6, 'p', 20n));
    await settle(store);
    take(tick);
    onPing(session, ctx, { kind: FrameKind.Ping, nonce: 2 });
    const frames = session.frames();
    expect(frames.filter((f) => f.kind === FrameKind.Pong)).toEqual([
      { kind: FrameKind.Pong, nonce: 1, newestTs: MIN_TS },
      { kind: FrameKind.Pong, nonce: 2, newestTs: 20n },
    ]);
    expect(acks(frames)).toEqual([
      [5, AckStatus.Accepted, Durability.None, null],
      [6, AckStatus.Accepted, Durability.Written, null],
    ]);
  });

  it('handlers - a fetch is answered through the session, each distinct id once, in order, and holds reading at 8 queued', async () => {
    const { store, tick, ctx } = await setup();
    const session = new FakeSession(ctx);
    onPublish(session, ctx, frame.publish(1, 'a', 1n, 'A'));
    await settle(store);
    take(tick);
    session.frames();
    const last = session.until((f) => f.kind === FrameKind.FetchResult && f.reqId === 17 && !f.more);
    for (let i = 0; i < 8; i++) onFetch(session, ctx, { kind: FrameKind.Fetch, reqId: 10 + i, ids: ['a', 'b', 'a'] });
    expect(session.holds).toEqual(['hold fetches']);
    await last;
    const results = session.frames().filter((f) => f.kind === FrameKind.FetchResult);
    expect(results.map((f) => f.reqId)).toEqual([10, 11, 12, 13, 14, 15, 16, 17]);
    expect(results[0]).toMatchObject({
      more: false,
      entries: [
        { id: 'a', found: true, ts: 1n },
        { id: 'b', found: false },
      ],
    });
    expect(session.holds.at(-1)).toBe('release fetches');
  });
});

describe('tick - settling and the broadcast', () => {
  it('tick - settled publishes are broadcast in the store order and acked in it, the broadcasts handed out by the flush (A4)', async () => {
    const { store, tick, ctx, flushes } = await setup();
    const a = new FakeSession(ctx);
    const b = new FakeSession(ctx);
    onPublish(a, ctx, frame.publish(1, 'k', 10n));
    onPublish(b, ctx, frame.publish(2, 'k', 11n));
    onPublish(a, ctx, frame.publish(3, 'k', 9n));
    onPublish(b, ctx, frame.publish(4, 'j', 12n));
    expect(a.inflight).toBeGreaterThan(0);
    await settle(store);
    // The store has settled them: the tick holds their broadcasts, the sessions their acks
    // among their own frames, and a flush is asked for, which hands out the broadcasts first.
    expect(flushes()).toBeGreaterThan(0);
    const messages = take(tick);
    expect(messageIds(messages?.bytes)).toEqual(['k', 'k', 'j']);
    expect(messages?.tss).toEqual([10n, 11n, 12n]);
    expect(messages?.origins).toEqual([a, b, b]);
    // The stale one settled first (the store's shared stale promise), then the write.
    expect(acks(a.frames())).toEqual([
      [3, AckStatus.Stale, Durability.None, null],
      [1, AckStatus.Accepted, Durability.Written, null],
    ]);
    expect(acks(b.frames()).map(([reqId, status]) => [reqId, status])).toEqual([
      [2, AckStatus.Accepted],
      [4, AckStatus.Accepted],
    ]);
    expect(a.inflight).toBe(0);
    expect(ctx.stats.publishesStale).toBe(1);
    expect(take(tick)).toBeUndefined();
  });

  it('tick - a failed batch is told to every publisher of it with the error; batches settle in the order the store settled them', async () => {
    const told: string[] = [];
    const publisher = (name: string): Publisher => ({
      echo: true,
      settled: (f, result, error) => told.push(`${name} ${f.id} ${result?.status ?? (error as GossipError).code}`),
    });
    let flushes = 0;
    const tick = new Tick(() => {
      flushes++;
    });
    const p = (id: string): Publication => ({ reqId: 1, id, ts: 1n, data: Buffer.from(id) });
    let fail: (e: unknown) => void = () => undefined;
    const failing = new Promise<AppendResult>((_, reject) => {
      fail = reject;
    });
    const stale = Promise.resolve<AppendResult>({ status: 'stale', durability: 'none' });
    tick.stored(publisher('x'), p('a'), failing);
    tick.stored(publisher('y'), p('b'), failing);
    tick.stored(publisher('x'), p('c'), stale);
    await Promise.resolve();
    fail(new GossipError('GOSSIP_ERR_STORE_WRITE', 'disk full'));
    await Promise.resolve();
    // The stale promise settled first, then the failed one; once settled, a promise's next publish starts a new batch.
    tick.stored(publisher('y'), p('d'), stale);
    await new Promise((r) => setImmediate(r));
    expect(take(tick)).toBeUndefined();
    expect(told).toEqual(['x c stale', 'x a GOSSIP_ERR_STORE_WRITE', 'y b GOSSIP_ERR_STORE_WRITE', 'y d stale']);
    expect(flushes).toBe(3);
  });

  it('tick - the legacy form is encoded from the tick messages, as LegacyEncoder encodes them', async () => {
    const tick = new Tick(() => undefined);
    const origin: Origin = { echo: true };
    const rows: [boolean, string, bigint, Buffer][] = [
      [false, 'flags/checkout', 1_700_000_000_000_000_000n, Buffer.from('on')],
      [true, 'presence/alice', -5n, Buffer.from('here')],
      [false, 'gone', 7n, Buffer.alloc(0)],
      [false, 'big', 8n, Buffer.alloc(4096, 0x61)],
    ];
    const legacyOf = (round: typeof rows) => {
      const enc = new LegacyEncoder();
      for (const [transient, id, ts, data] of round) {
        enc.message(transient ? LegacyKind.Transient : LegacyKind.Persisted, id, ts, data);
      }
      return enc.take().toString('hex');
    };
    // A second, smaller tick reuses the arrays of the first and must not see its entries.
    for (const round of [rows, rows.slice(1, 3)]) {
      for (const [transient, id, ts, data] of round) tick.broadcast(origin, transient, id, ts, data);
      let legacy = '';
      take(tick, (m) => {
        legacy = tick.legacy(m).toString('hex');
      });
      expect(legacy).toBe(legacyOf(round));
    }
    for (const [transient, id, ts, data] of rows) tick.broadcast(origin, transient, id, ts, data);
    const messages = take(tick) as Taken;
    // And the native frames carry the same messages.
    const native: Frame[] = [];
    new FrameDecoder((f) => native.push(f)).push(messages.bytes);
    expect(native.map((f) => (f.kind === FrameKind.Message ? [f.flags, f.id, f.ts, Buffer.from(f.data)] : f))).toEqual(
      rows.map(([transient, id, ts, data]) => [transient ? MessageFlags.Transient : 0, id, ts, data]),
    );
  });

  it('tick - withoutOrigin leaves out the messages of a connection with echo off', () => {
    const tick = new Tick(() => undefined);
    const quiet: Origin = { echo: false };
    const other: Origin = { echo: true };
    tick.broadcast(quiet, false, 'a', 1n, Buffer.from('1'));
    tick.broadcast(other, false, 'b', 2n, Buffer.from('2'));
    tick.broadcast(quiet, true, 'c', 3n, Buffer.from('3'));
    take(tick, (messages) => {
      const own = withoutOrigin(messages, quiet);
      expect(own.count).toBe(1);
      expect(messageIds(own.bytes)).toEqual(['b']);
      expect(withoutOrigin(messages, { echo: false }).bytes).toBe(messages.bytes);
    });
  });
});

describe('connection - the replay a hello gets', () => {
  it('connection - resyncReason checks epoch, then horizon, then a since of -2^63 without an epoch (R3, H3, H4, R4)', () => {
    const epoch = '0123456789abcdef0123456789abcdef';
    const other = '00000000000000000000000000000000';
    const none = { epoch, horizon: null };
    const horizon = { epoch, horizon: 100n };
    const cases: [bigint | null, string | null, { epoch: string; horizon: bigint | null }, ResyncReason | undefined][] =
      [
        [null, other, horizon, undefined],
        [500n, other, horizon, ResyncReason.Epoch],
        [MIN_TS, other, none, ResyncReason.Epoch],
        [100n, epoch, horizon, ResyncReason.Horizon],
        [MIN_TS, null, horizon, ResyncReason.Horizon],
        [101n, null, horizon, undefined],
        [MIN_TS, null, none, ResyncReason.Full],
        [MIN_TS, epoch, none, undefined],
        [5n, null, none, undefined],
      ];
    for (const [since, helloEpoch, store, want] of cases) {
      expect(resyncReason(since, helloEpoch, store), `${since} ${helloEpoch} ${store.horizon}`).toBe(want);
    }
  });
});
