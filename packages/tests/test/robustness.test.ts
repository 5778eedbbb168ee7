import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AckFrame,
  AckStatus,
  DEFAULT_MAX_FRAME_BYTES,
  type ErrorCode,
  type ErrorFrame,
  type Frame,
  FrameDecoder,
  FrameEncoder,
  FrameKind,
  type GossipError,
  type HelloOptions,
  MAX_HELLO_FRAME_BYTES,
  MessageFlags,
  type MessageFrame,
  MIN_TS,
  now,
  PROTOCOL_VERSION,
  type ReplayDoneFrame,
  type ResyncFrame,
  ResyncReason,
  type WelcomeFrame,
} from '@gossip/protocol';
import { mulberry32 } from '@gossip/protocol/testing';
import { Gossipd, RawClient } from '@gossip/testing';
import { afterEach, describe, expect, it } from 'vitest';

/*
 * Robustness of a real gossipd process: crashes under load checked against what the
 * client saw acked, garbage from raw sockets, slow consumers and slow replay readers.
 * Randomness comes from one seed (GOSSIP_E2E_SEED to replay a failure; it is printed in
 * every assertion message). GOSSIP_E2E_KILLS raises the number of kill -9 rounds.
 */

const SEED = Number(process.env.GOSSIP_E2E_SEED ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = Number(process.env.GOSSIP_E2E_KILLS ?? 5);
const MiB = 1024 * 1024;
const KiB = 1024;
/** prom-client's standard resident memory gauge. */
const RSS_METRIC = 'process_resident_memory_bytes';
const why = (what: string) => `${what} (seed ${SEED})`;

const daemons: Gossipd[] = [];
const dirs: string[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const d of daemons.splice(0)) await d.kill();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gossip-robust-'));
  dirs.push(dir);
  return dir;
}

/** Starts gossipd; the data folder (a new one unless given) is removed after the test. */
async function start(args: string[], dataDir?: string): Promise<Gossipd> {
  const d = await Gossipd.start({ args, dataDir: dataDir ?? (await tempDir()) });
  daemons.push(d);
  return d;
}

type Rng = () => number;
const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
function randomBytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/**
 * A frame-level client for volume: frames go to listeners as they arrive and nothing is
 * kept (RawClient keeps every frame). It counts the bytes it receives and can stop
 * reading at a byte count, so TCP backs up to the server.
 */
class Peer {
  readonly socket: Socket;
  readonly enc = new FrameEncoder();
  readonly welcome: Promise<WelcomeFrame>;
  readonly replayDone: Promise<ReplayDoneFrame>;
  readonly closed: Promise<void>;
  /** Bytes received so far. */
  received = 0;
  /** The error frame the server sent, if any. */
  error: ErrorFrame | undefined;
  decodeError: unknown;
  isClosed = false;
  #pauseAt = Number.POSITIVE_INFINITY;
  #reached: (() => void) | undefined;
  readonly #listeners = new Set<(f: Frame) => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    const dec = new FrameDecoder(
      (f) => {
        if (f.kind === FrameKind.Error) this.error = f;
        for (const l of this.#listeners) l(f);
      },
      { maxFrameBytes: 64 * MiB },
    );
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.length;
      try {
        dec.push(chunk);
      } catch (error) {
        this.decodeError = error;
        socket.destroy();
      }
      if (this.received >= this.#pauseAt) {
        socket.pause();
        this.#reached?.();
        this.#reached = undefined;
      }
    });
    socket.on('error', () => undefined);
    // Not `once(socket, 'close')`: that rejects on the 'error' (a reset) that comes first.
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
    this.welcome = this.waitFor((f): f is WelcomeFrame => f.kind === FrameKind.Welcome);
    this.replayDone = this.waitFor((f): f is ReplayDoneFrame => f.kind === FrameKind.ReplayDone);
    // Not every test waits for these; a close must not surface as an unhandled rejection.
    this.welcome.catch(() => undefined);
    this.replayDone.catch(() => undefined);
  }

  /** Connects and sends a hello; `onFrame` sees every frame from the first on. Resolves at the welcome. */
  static async connect(port: number, hello: HelloOptions, onFrame?: (f: Frame) => void): Promise<Peer> {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    const p = new Peer(socket);
    if (onFrame) p.on(onFrame);
    await once(socket, 'connect');
    p.send(p.enc.hello(hello).take());
    await p.welcome;
    return p;
  }

  on(listener: (f: Frame) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next frame (from now on) that matches; rejects if the connection closes first. */
  waitFor<T extends Frame>(match: (f: Frame) => f is T): Promise<T>;
  waitFor(match: (f: Frame) => boolean): Promise<Frame>;
  waitFor(match: (f: Frame) => boolean): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const off = this.on((f) => {
        if (!match(f)) return;
        off();
        resolve(f);
      });
      void this.closed.then(() => {
        off();
        reject(new Error(`connection closed while waiting for a frame (error frame: ${this.error?.code ?? 'none'})`));
      });
    });
  }

  async ping(nonce: number): Promise<void> {
    const pong = this.waitFor((f) => f.kind === FrameKind.Pong && f.nonce === nonce);
    this.send(this.enc.ping(nonce).take());
    await pong;
  }

  /** Stops reading now: what the server sends piles up in the socket buffers. */
  pause(): void {
    this.#pauseAt = this.received;
    this.socket.pause();
  }

  /** Reads until at least `total` bytes have arrived in all (or the connection closed), then stops reading. */
  async readUntil(total: number): Promise<void> {
    this.#pauseAt = total;
    if (this.received >= total || this.isClosed) return;
    const reached = new Promise<void>((resolve) => (this.#reached = resolve));
    this.socket.resume();
    await Promise.race([reached, this.closed]);
  }

  /** Reads everything from now on. */
  resume(): void {
    this.#pauseAt = Number.POSITIVE_INFINITY;
    this.socket.resume();
  }
}

interface Sent {
  id: string;
  ts: bigint;
  data: Buffer;
}

/** What the publishing side knows: every publish it sent, and the newest accepted one per id. */
interface Oracle {
  /** `${id}@${ts}` → data, for every publish sent (acked or not). */
  sent: Map<string, Buffer>;
  /** Newest accepted publish per id. */
  acked: Map<string, { ts: bigint; data: Buffer }>;
}
const sentKey = (id: string, ts: bigint) => `${id}@${ts}`;
const newOracle = (): Oracle => ({ sent: new Map(), acked: new Map() });

/**
 * A pipelining publisher: keeps `window` publishes in flight and sends the next ones
 * as acks arrive (all the acks of one received chunk release one write). `next` returns
 * undefined when it has no more, null for "not now" (call `pump` later). ts comes from
 * `now()`, strictly increasing in this process, so no publish of ours is ever stale.
 */
class Publisher {
  readonly peer: Peer;
  acks = 0;
  stale = 0;
  readonly errors: AckFrame[] = [];
  /** Settles when `next` has run dry and every publish is acked. */
  readonly finished: Promise<void>;
  readonly #window: number;
  readonly #next: () => { id: string; data: Buffer } | null | undefined;
  readonly #oracle: Oracle | undefined;
  readonly #onAccepted: ((s: Sent) => void) | undefined;
  readonly #inFlight = new Map<number, Sent>();
  #reqId = 1;
  #stopped = false;
  #pumpQueued = false;
  #waiters: { ready: () => boolean; resolve: () => void }[] = [];

  constructor(
    peer: Peer,
    options: {
      window: number;
      next: () => { id: string; data: Buffer } | null | undefined;
      oracle?: Oracle;
      onAccepted?: (s: Sent) => void;
    },
  ) {
    this.peer = peer;
    this.#window = options.window;
    this.#next = options.next;
    this.#oracle = options.oracle;
    this.#onAccepted = options.onAccepted;
    this.finished = this.#until(() => this.#stopped && this.#inFlight.size === 0);
    this.finished.catch(() => undefined);
    peer.on((f) => {
      if (f.kind === FrameKind.Ack) this.#onAck(f);
    });
  }

  start(): this {
    this.pump();
    return this;
  }

  /** Resolves once `n` acks arrived; rejects if the connection closes first. */
  untilAcks(n: number): Promise<void> {
    return this.#until(() => this.acks >= n);
  }

  /** Sends nothing more; resolves once every publish in flight is acked. */
  drain(): Promise<void> {
    this.#stopped = true;
    this.#settle();
    return this.finished;
  }

  #until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ ready, resolve });
      void this.peer.closed.then(() =>
        reject(new Error(`publisher's connection closed after ${this.acks} acks (error: ${this.peer.error?.code})`)),
      );
    });
  }

  #settle(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.ready()) return true;
      w.resolve();
      return false;
    });
  }

  #onAck(f: AckFrame): void {
    const sent = this.#inFlight.get(f.reqId);
    if (!sent) return;
    this.#inFlight.delete(f.reqId);
    this.acks++;
    if (f.status === AckStatus.Accepted) {
      const acked = this.#oracle?.acked;
      const prev = acked?.get(sent.id);
      if (acked && (!prev || prev.ts < sent.ts)) acked.set(sent.id, { ts: sent.ts, data: sent.data });
      this.#onAccepted?.(sent);
    } else if (f.status === AckStatus.Stale) {
      this.stale++;
    } else {
      this.errors.push(f);
    }
    if (!this.#pumpQueued) {
      this.#pumpQueued = true;
      queueMicrotask(() => {
        this.#pumpQueued = false;
        this.pump();
      });
    }
    this.#settle();
  }

  pump(): void {
    if (this.peer.isClosed) return;
    let any = false;
    while (!this.#stopped && this.#inFlight.size < this.#window) {
      const m = this.#next();
      if (m === null) break;
      if (m === undefined) {
        this.#stopped = true;
        break;
      }
      const ts = now();
      const reqId = this.#reqId++;
      this.peer.enc.publish(reqId, m.id, ts, m.data);
      this.#oracle?.sent.set(sentKey(m.id, ts), m.data);
      this.#inFlight.set(reqId, { id: m.id, ts, data: m.data });
      any = true;
    }
    if (any) this.peer.send(this.peer.enc.take());
    this.#settle();
  }
}

/** Connects with `since` = MIN_TS and no epoch, and collects the full snapshot the server answers with. */
async function fullSnapshot(
  port: number,
): Promise<{ messages: MessageFrame[]; resync: ResyncFrame | undefined; done: ReplayDoneFrame }> {
  const messages: MessageFrame[] = [];
  let resync: ResyncFrame | undefined;
  let replaying = true;
  const peer = await Peer.connect(port, { since: MIN_TS }, (f) => {
    if (!replaying) return;
    if (f.kind === FrameKind.Message) messages.push({ ...f, data: Buffer.from(f.data) });
    else if (f.kind === FrameKind.Resync) resync = f;
    else if (f.kind === FrameKind.ReplayDone) replaying = false;
  });
  const done = await peer.replayDone;
  peer.socket.destroy();
  return { messages, resync, done };
}

/**
 * Checks a snapshot against the oracle: one message per id, ascending ts, every message
 * one we sent (no invented data), and every accepted publish present (the id's ts at
 * least the acked one; equal ts means equal data, since the pair is one we sent).
 * Returns the problems found, so a failure lists them all.
 */
function snapshotProblems(messages: MessageFrame[], oracle: Oracle): string[] {
  const problems: string[] = [];
  const seen = new Map<string, MessageFrame>();
  let prev = MIN_TS;
  for (const m of messages) {
    if ((m.flags & MessageFlags.Replayed) === 0) problems.push(`${m.id}: replayed flag missing`);
    if (seen.has(m.id)) problems.push(`${m.id}: appears twice`);
    seen.set(m.id, m);
    if (m.ts < prev) problems.push(`${m.id}: ts ${m.ts} after ${prev}, not ascending`);
    prev = m.ts;
    const sent = oracle.sent.get(sentKey(m.id, m.ts));
    if (!sent) problems.push(`${m.id}@${m.ts}: never published`);
    else if (!sent.equals(m.data)) problems.push(`${m.id}@${m.ts}: data differs from what was published`);
  }
  for (const [id, acked] of oracle.acked) {
    const m = seen.get(id);
    if (!m) problems.push(`${id}: acked at ${acked.ts} but missing`);
    else if (m.ts < acked.ts) problems.push(`${id}: acked at ${acked.ts} but the snapshot holds ${m.ts}`);
  }
  return problems;
}

/** A checked snapshot becomes the oracle's state: what a restarted server served must stay. */
function adopt(oracle: Oracle, messages: MessageFrame[]): void {
  oracle.acked.clear();
  for (const m of messages) oracle.acked.set(m.id, { ts: m.ts, data: m.data });
}

describe('durability', () => {
  it(`durability - every acked publish survives kill -9 under load (fsync always, ${KILLS} kills)`, async () => {
    const r = mulberry32(SEED);
    // Targets from their own generator: how often `next` runs depends on timing.
    const targets = mulberry32(SEED + 10);
    const dir = await tempDir();
    const oracle = newOracle();
    let seq = 0;
    const next = () => {
      const id = `k${int(r, 0, 499)}`;
      seq++;
      // Some tombstones, and sizes that vary, so a torn tail can fall anywhere in a record.
      const data =
        r() < 0.05 ? Buffer.alloc(0) : Buffer.concat([Buffer.from(`${seq}:`), randomBytes(r, int(r, 0, 1500))]);
      return { id, data };
    };
    for (let round = 0; ; round++) {
      const d = await start(['--fsync', 'always'], dir);
      const snap = await fullSnapshot(d.port);
      expect(snap.resync?.reason, why('resync reason')).toBe(ResyncReason.Full);
      expect(snap.done.snapshot).toBe(true);
      expect(snap.done.count).toBe(snap.messages.length);
      expect(snapshotProblems(snap.messages, oracle), why(`round ${round}`)).toEqual([]);
      adopt(oracle, snap.messages);
      if (round === KILLS) break;

      const pub = new Publisher(await Peer.connect(d.port, { since: null, echo: false }), {
        window: 64,
        next,
        oracle,
      }).start();
      const target = int(targets, 100, 1200);
      await pub.untilAcks(target);
      await d.kill();
      await pub.peer.closed;
      expect(pub.errors, why('error acks')).toEqual([]);
      expect(pub.stale).toBe(0);
    }
    expect(oracle.acked.size).toBeGreaterThan(0);
  });

  it('durability - SIGTERM flushes: a graceful restart replays exactly what was acked (fsync interval)', async () => {
    const r = mulberry32(SEED + 1);
    const targets = mulberry32(SEED + 11);
    const dir = await tempDir();
    const oracle = newOracle();
    let seq = 0;
    const next = () => {
      seq++;
      return {
        id: `g${int(r, 0, 499)}`,
        data: r() < 0.05 ? Buffer.alloc(0) : Buffer.from(`${seq}:${'v'.repeat(seq % 300)}`),
      };
    };

    // Under load: the publisher is told the server is going, and nothing acked is lost.
    let d = await start([], dir);
    const busy = new Publisher(await Peer.connect(d.port, { since: null, echo: false }), { window: 64, next, oracle });
    busy.start();
    await busy.untilAcks(int(targets, 200, 1500));
    expect((await d.stop()).code).toBe(0);
    await busy.peer.closed;
    expect(busy.peer.error?.code).toBe('GOSSIP_ERR_SHUTTING_DOWN');
    expect(busy.errors).toEqual([]);
    d = await start([], dir);
    const first = await fullSnapshot(d.port);
    expect(snapshotProblems(first.messages, oracle), why('after SIGTERM under load')).toEqual([]);
    adopt(oracle, first.messages);

    // Quiet: every publish acked before the signal, so the replay is exactly the oracle.
    const quiet = new Publisher(await Peer.connect(d.port, { since: null, echo: false }), { window: 64, next, oracle });
    quiet.start();
    await quiet.untilAcks(int(targets, 200, 1500));
    await quiet.drain();
    expect((await d.stop()).code).toBe(0);
    d = await start([], dir);
    const second = await fullSnapshot(d.port);
    const got = new Map(second.messages.map((m) => [m.id, `${m.ts} ${m.data.toString('hex')}`]));
    const want = new Map([...oracle.acked].map(([id, a]) => [id, `${a.ts} ${a.data.toString('hex')}`]));
    expect(got, why('replay after a quiet SIGTERM')).toEqual(want);
    expect(snapshotProblems(second.messages, oracle)).toEqual([]);
  });
});

/** The fate the server owes a byte stream, worked out with the same decoder and the rules of the lifecycle. */
interface Fate {
  /** The error frame's code when the server must close; 'closes' when it must close with any code; null when the stream is acceptable. */
  code: ErrorCode | 'closes' | null;
  /** Whether the decoder itself fails (what gossip_protocol_errors_total counts). */
  decoder: boolean;
  /** Whether the stream stops inside a frame. */
  partial: boolean;
}

const LIVE_KINDS = new Set<number>([
  FrameKind.Publish,
  FrameKind.Emit,
  FrameKind.Fetch,
  FrameKind.Ping,
  FrameKind.Pong,
]);

function fateOf(bytes: Buffer): Fate {
  // A first byte 0x47 ('G') is the original protocol's handshake: the server answers in
  // that protocol (a text line, never an error frame) and legacy.test.ts checks how.
  if (bytes[0] === 0x47) return { code: null, decoder: false, partial: false };
  let state: 'hello' | 'live' = 'hello';
  let code: Fate['code'] = null;
  const dec = new FrameDecoder(
    (f) => {
      if (code !== null) return;
      // A client may close with an error frame (E2): the server closes, with no answer owed.
      if (f.kind === FrameKind.Error) code = 'closes';
      else if (state === 'hello') {
        if (f.kind !== FrameKind.Hello) code = 'GOSSIP_ERR_UNEXPECTED_FRAME';
        else if (f.version !== PROTOCOL_VERSION) code = 'GOSSIP_ERR_UNSUPPORTED_VERSION';
        else {
          state = 'live';
          // Welcomed: frames up to the server's maximum from now on (F3).
          dec.maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
        }
      } else if (!LIVE_KINDS.has(f.kind)) code = 'GOSSIP_ERR_UNEXPECTED_FRAME';
    },
    // Before the welcome, no frame larger than a hello (F3).
    { maxFrameBytes: MAX_HELLO_FRAME_BYTES },
  );
  try {
    dec.push(bytes);
  } catch (error) {
    if (code === null) return { code: (error as GossipError).code, decoder: true, partial: false };
  }
  return { code, decoder: false, partial: code === null && dec.bufferedBytes > 0 };
}

/** A few valid frames after a valid hello, as a well-behaved client could send them. */
function validStream(r: Rng): Buffer {
  const enc = new FrameEncoder();
  enc.hello({ since: r() < 0.3 ? now() - 1_000_000_000n : null, name: 'fuzz', echo: r() < 0.5 });
  for (let i = int(r, 1, 6); i > 0; i--) {
    const id = `fuzz/${int(r, 0, 20)}`;
    const pick = int(r, 0, 3);
    if (pick === 0) enc.publish(i, id, now(), randomBytes(r, int(r, 0, 64)));
    else if (pick === 1) enc.emit(i, id, now(), randomBytes(r, int(r, 0, 64)));
    else if (pick === 2) enc.fetch(i, [id, `fuzz/${int(r, 0, 20)}`]);
    else enc.ping(i);
  }
  return Buffer.from(enc.take());
}

/** Random frames: whole random bytes, or frames with a plausible length and random kind and body. */
function randomStream(r: Rng): Buffer {
  const shape = int(r, 0, 2);
  if (shape === 0) return randomBytes(r, int(r, 1, 4096));
  const parts: Buffer[] = [];
  for (let i = shape === 1 ? 1 : int(r, 2, 6); i > 0; i--) {
    const body = randomBytes(r, int(r, 0, 200));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length + 1);
    head[4] = r() < 0.8 ? int(r, 1, 0x0d) : int(r, 0, 255);
    parts.push(head, body);
  }
  return Buffer.concat(parts);
}

/** One well-formed frame a client must not send where it sends it: a server's frame, a second or unknown-version hello. */
function misplacedFrame(r: Rng): Buffer {
  const enc = new FrameEncoder();
  const ts = now();
  switch (int(r, 0, 8)) {
    case 0:
      enc.welcome({
        epoch: randomBytes(r, 16).toString('hex'),
        newestTs: ts,
        horizon: null,
        maxIdBytes: 256,
        maxDataBytes: 1024,
        maxFrameBytes: 2048,
      });
      break;
    case 1:
      enc.ack(1, AckStatus.Accepted, 1);
      break;
    case 2:
      enc.message(0, 'fuzz/m', ts, randomBytes(r, 8));
      break;
    case 3:
      enc.replayDone(0, ts, false);
      break;
    case 4:
      enc.resync(ResyncReason.Full, null);
      break;
    case 5:
      enc.fetchResult(1, false, [{ id: 'fuzz/f', found: false }]);
      break;
    case 6:
      enc.error('GOSSIP_ERR_INTERNAL', 'from a client');
      break;
    case 7:
      enc.hello({ name: 'again' });
      break;
    default:
      enc.hello({ version: int(r, 2, 255) });
  }
  return Buffer.from(enc.take());
}

function mutate(r: Rng, input: Buffer): Buffer {
  const b = Buffer.from(input);
  for (let i = int(r, 1, 8); i > 0; i--) {
    const at = int(r, 0, b.length - 1);
    b[at] = r() < 0.5 ? (b[at] as number) ^ (1 << int(r, 0, 7)) : int(r, 0, 255);
  }
  return b;
}

const hello = () => Buffer.from(new FrameEncoder().hello({ name: 'fuzz' }).take());

interface BadCase {
  name: string;
  bytes: Buffer;
  /** The client drops the connection right after sending (half frames). */
  hangUp?: boolean;
  /** Pongs owed before the error (a ping flood). */
  pongs?: number;
}

function badCases(r: Rng): BadCase[] {
  const cases: BadCase[] = [];
  for (let i = 0; i < 12; i++) cases.push({ name: 'random bytes', bytes: randomStream(r) });
  for (let i = 0; i < 12; i++)
    cases.push({ name: 'random bytes after a hello', bytes: Buffer.concat([hello(), randomStream(r)]) });
  for (let i = 0; i < 40; i++) cases.push({ name: 'mutated valid frames', bytes: mutate(r, validStream(r)) });
  for (let i = 0; i < 12; i++) {
    const before = r() < 0.3 ? [] : [validStream(r)];
    cases.push({ name: 'a frame in the wrong place', bytes: Buffer.concat([...before, misplacedFrame(r)]) });
  }
  for (const len of [
    DEFAULT_MAX_FRAME_BYTES + 1,
    0xffffffff,
    2 ** 31,
    int(r, DEFAULT_MAX_FRAME_BYTES + 2, 2 ** 32 - 2),
  ]) {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(len);
    head[4] = FrameKind.Publish;
    cases.push({ name: `declared length ${len}`, bytes: Buffer.concat([head, randomBytes(r, 64)]) });
    cases.push({
      name: `declared length ${len} after a hello`,
      bytes: Buffer.concat([hello(), head, randomBytes(r, 64)]),
    });
  }
  for (let i = 0; i < 10; i++) {
    const whole = validStream(r);
    cases.push({
      name: 'half a frame, then close',
      bytes: whole.subarray(0, int(r, 1, whole.length - 1)),
      hangUp: true,
    });
  }
  const pings = 20_000;
  const flood = new FrameEncoder();
  for (let i = 1; i <= pings; i++) flood.ping(i);
  // A frame of length 0 at the end: the flood itself is legal, the server must answer every ping first.
  cases.push({ name: 'a ping flood', bytes: Buffer.concat([hello(), flood.take(), Buffer.alloc(4)]), pongs: pings });
  for (let i = 0; i < 4; i++)
    cases.push({ name: 'legacy GOSSIP handshake', bytes: Buffer.concat([Buffer.from('GOSSIP'), randomBytes(r, 8)]) });
  return cases;
}

/** Writes a bad case in a few pieces and checks how the connection ends. Returns its fate. */
async function runBadCase(port: number, r: Rng, c: BadCase): Promise<Fate> {
  const fate = fateOf(c.bytes);
  // Drawn before the first await, so concurrent cases draw in a fixed order and a seed replays.
  const cuts = [0, ...Array.from({ length: int(r, 0, 3) }, () => int(r, 0, c.bytes.length)).sort((a, b) => a - b)];
  const client = await RawClient.open(port);
  sockets.push(client.socket);
  for (let i = 0; i < cuts.length; i++) client.send(c.bytes.subarray(cuts[i], cuts[i + 1] ?? c.bytes.length));
  const label = why(`${c.name} ${c.bytes.subarray(0, 64).toString('hex')}`);
  // RawClient's `closed` rejects when a reset comes first; what was received before it still counts.
  const closedWithError = async () => {
    await client.closed.catch(() => undefined);
    return client.frames.find((f): f is ErrorFrame => f.kind === FrameKind.Error);
  };
  if (c.hangUp) {
    client.close();
    await client.closed.catch(() => undefined);
    return fate;
  }
  if (fate.code === null) {
    // Nothing fatal in it (or it stops inside a frame): the server keeps it until we hang up, then closes too.
    client.socket.end();
    const err = await closedWithError();
    if (fate.partial) expect([undefined, 'GOSSIP_ERR_MALFORMED_FRAME'], label).toContain(err?.code);
    else expect(err, label).toBeUndefined();
    return fate;
  }
  const err = await closedWithError();
  if (fate.code === 'closes') {
    // The client closed with its own error frame: the server just closes (docs/PROTOCOL.md, E2).
    if (err) expect(client.frames.at(-1), label).toBe(err);
    return fate;
  }
  expect(err, label).toBeDefined();
  expect(client.frames.at(-1), label).toBe(err);
  expect(err?.code, label).toBe(fate.code);
  if (c.pongs !== undefined) expect(client.frames.filter((f) => f.kind === FrameKind.Pong).length).toBe(c.pongs);
  expect(client.decodeError, label).toBeUndefined();
  return fate;
}

describe('bad input', () => {
  it('bad input - garbage and fuzzed frames close only their own connection; the server and other clients carry on', async () => {
    const r = mulberry32(SEED + 2);
    const d = await start([]);
    const errorsBefore = await d.metric('gossip_protocol_errors_total');

    // A well-behaved pair exchanging messages the whole time.
    const received: number[] = [];
    const sub = await Peer.connect(d.port, { since: null }, (f) => {
      if (f.kind === FrameKind.Message && f.id.startsWith('good/')) received.push(Number(f.data.toString()));
    });
    await sub.replayDone;
    const accepted: number[] = [];
    let seq = 0;
    const pub = new Publisher(await Peer.connect(d.port, { since: null, echo: false }), {
      window: 8,
      next: () => {
        seq++;
        return { id: `good/${seq % 50}`, data: Buffer.from(String(seq)) };
      },
      onAccepted: (s) => accepted.push(Number(s.data.toString())),
    }).start();
    await pub.untilAcks(100);

    const cases = badCases(r);
    const acksBefore = pub.acks;
    const fates: Fate[] = [];
    for (let i = 0; i < cases.length; i += 12) {
      const batch = cases.slice(i, i + 12);
      fates.push(...(await Promise.all(batch.map((c) => runBadCase(d.port, r, c)))));
      // The good pair keeps going between the waves.
      await pub.untilAcks(pub.acks + 10);
    }
    expect(pub.acks, why('the good publisher was stalled')).toBeGreaterThan(acksBefore);

    await pub.drain();
    await sub.ping(1);
    expect(pub.errors).toEqual([]);
    expect(received.length, why('messages lost by the good subscriber')).toBe(accepted.length);
    expect(received).toEqual(accepted);
    expect(received.every((n, i) => i === 0 || n > (received[i - 1] as number))).toBe(true);

    expect(d.child.exitCode).toBeNull();
    expect((await d.admin('/healthz')).status).toBe(200);
    const decoderFailures = fates.filter((f) => f.decoder).length;
    const errors = (await d.metric('gossip_protocol_errors_total')) - errorsBefore;
    expect(decoderFailures).toBeGreaterThan(0);
    expect(errors, why('gossip_protocol_errors_total')).toBeGreaterThanOrEqual(decoderFailures);
    expect(errors).toBeLessThanOrEqual(cases.length);
    // Every bad connection is gone on the server's side too: only the good pair is left.
    // The server sees each close a moment after the client does, so this asks a bounded number of times.
    let open = await d.metric('gossip_connections');
    for (let i = 0; i < 100 && open !== 2; i++) open = await d.metric('gossip_connections');
    expect(open).toBe(2);
  });
});

describe('back-pressure', () => {
  it('back-pressure - a stalled subscriber is dropped at --max-outbound while a reader gets everything, and catches up by replay', async () => {
    const d = await start(['--max-outbound', '1MiB']);
    const total = 800;
    const size = 64 * KiB;

    // Stalled: reads its welcome and replay-done, then nothing.
    const stalledSeen: { id: string; ts: bigint }[] = [];
    const stalled = await Peer.connect(d.port, { since: null, name: 'stalled' }, (f) => {
      if (f.kind === FrameKind.Message) stalledSeen.push({ id: f.id, ts: f.ts });
    });
    await stalled.replayDone;
    stalled.pause();

    // Reading: checks every message arrives, in order, whole.
    let readerCount = 0;
    const readerProblems: string[] = [];
    let pub: Publisher | undefined;
    const reader = await Peer.connect(d.port, { since: null, name: 'reader' }, (f) => {
      if (f.kind !== FrameKind.Message) return;
      if (f.id !== `big/${readerCount}` || f.data.length !== size || f.data.readUInt32BE(0) !== readerCount)
        readerProblems.push(`message ${readerCount}: got ${f.id} with ${f.data.length} bytes`);
      readerCount++;
      pub?.pump();
    });
    await reader.replayDone;
    const readerGotAll = reader.waitFor(() => readerCount >= total);
    readerGotAll.catch(() => undefined);

    // Paced by the reader (at most 8 messages ahead of it), so the reader is never the slow one.
    let n = 0;
    pub = new Publisher(await Peer.connect(d.port, { since: null, echo: false }), {
      window: 8,
      next: () => {
        if (n >= total) return undefined;
        if (n - readerCount >= 8) return null;
        const data = Buffer.alloc(size, n % 251);
        data.writeUInt32BE(n);
        return { id: `big/${n++}`, data };
      },
    }).start();
    await d.waitLog((l) => l.msg.startsWith('slow consumer disconnected'));
    await pub.finished;
    await readerGotAll;
    expect(pub.errors).toEqual([]);
    expect(readerProblems).toEqual([]);
    expect(reader.isClosed).toBe(false);
    expect(await d.metric('gossip_slow_consumer_disconnects_total')).toBe(1);
    expect(await d.metric(RSS_METRIC)).toBeLessThan(300 * MiB);

    // The stalled client, reading again, finds the error frame right behind what the
    // socket had taken when it was dropped, then the close (docs/PROTOCOL.md, E2).
    stalled.resume();
    await stalled.closed;
    expect(stalled.error?.code).toBe('GOSSIP_ERR_SLOW_CONSUMER');
    expect(stalledSeen.length).toBeLessThan(total);
    stalledSeen.forEach((m, i) => {
      expect(m.id).toBe(`big/${i}`);
    });

    // Reconnecting from its last seen ts, it gets the rest from the log.
    const lastTs = stalledSeen.at(-1)?.ts ?? MIN_TS;
    const replayed: string[] = [];
    const again = await Peer.connect(d.port, { since: lastTs, epoch: (await stalled.welcome).epoch }, (f) => {
      if (f.kind === FrameKind.Message && f.flags & MessageFlags.Replayed) replayed.push(f.id);
    });
    const done = await again.replayDone;
    expect(done.snapshot).toBe(false);
    const have = new Set([...stalledSeen.map((m) => m.id), ...replayed]);
    expect(have.size, 'ids the stalled client holds after catching up').toBe(total);
  });

  it('back-pressure - a replay to a reader that stops reading stays bounded in server memory', async () => {
    const d = await start([]);
    const ids = 200_000;
    const data = randomBytes(mulberry32(SEED + 3), 256);
    let n = 0;
    const pub = new Publisher(await Peer.connect(d.port, { since: null, echo: false }), {
      window: 4096,
      next: () => (n < ids ? { id: `r/${n++}`, data } : undefined),
    }).start();
    await pub.finished;
    expect(pub.errors).toEqual([]);
    expect(pub.acks).toBe(ids);
    pub.peer.socket.destroy();

    const replayBytes = ids * (256 + 16 + 8);
    const rssBefore = await d.metric(RSS_METRIC);
    const bytesOutBefore = await d.metric('gossip_bytes_out_total');
    /** Bytes the server has handed to this socket but the reader has not received. */
    const outstanding = async (peer: Peer) =>
      (await d.metric('gossip_bytes_out_total')) - bytesOutBefore - peer.received;

    let count = 0;
    let order = true;
    const reader = await Peer.connect(d.port, { since: MIN_TS }, (f) => {
      if (f.kind !== FrameKind.Message) return;
      if (f.id !== `r/${count}`) order = false;
      count++;
    });
    // Read in small steps, stopping in between: each time the server must stop too.
    for (let step = 1; step <= 4; step++) {
      await reader.readUntil(step * 256 * KiB);
      await d.quiet();
      expect(await outstanding(reader), `unread bytes queued after step ${step}`).toBeLessThan(replayBytes / 3);
      expect((await d.metric(RSS_METRIC)) - rssBefore, `RSS growth after step ${step}`).toBeLessThan(replayBytes / 2);
    }
    expect(count).toBeLessThan(ids);

    reader.resume();
    const done = await reader.replayDone;
    expect(done.snapshot).toBe(true);
    expect(done.count).toBe(ids);
    expect(count).toBe(ids);
    expect(order, 'replay in ascending ts order').toBe(true);
  });
});
