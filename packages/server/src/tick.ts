import { FrameEncoder, LegacyEncoder, LegacyKind, MessageFlags } from '@gossip/protocol';
import { Buckets, SECONDS_BUCKETS } from '@gossip/store';
import type { Origin, Publication, Publisher } from './context.js';
import { type PublishOutcome, SUPERSEDED } from './record-log.js';

/** An entry's place once its tick is over: what it pointed at may be collected. */
const NOBODY: Origin = Object.freeze({ echo: true });
const NOTHING = Buffer.alloc(0);
/** Past this many entries in one tick the arrays are let go rather than kept for the next. */
const KEEP_ENTRIES = 64 * 1024;

/**
 * One tick's messages: the native message frames in `bytes`, encoded once for every
 * connection, and beside them, in parallel arrays (no object per message), what each
 * was made of, for the legacy form (`Tick.legacy`) and for connections with echo off
 * (`withoutOrigin`). Message `i` (of `count`) ends at `ends[i]` of `bytes`. The arrays
 * are kept from tick to tick, so a busy server does not grow them anew every tick: only
 * their first `count` entries are this tick's. Valid only during `Tick.flush`'s callback.
 */
export class TickMessages {
  count = 0;
  bytes: Buffer = NOTHING;
  ends: number[] = [];
  origins: Origin[] = [];
  ids: string[] = [];
  tss: bigint[] = [];
  data: Uint8Array[] = [];
  transient: boolean[] = [];

  add(origin: Origin, transient: boolean, id: string, ts: bigint, data: Uint8Array, end: number): void {
    const n = this.count++;
    this.ends[n] = end;
    this.origins[n] = origin;
    this.ids[n] = id;
    this.tss[n] = ts;
    this.data[n] = data;
    this.transient[n] = transient;
  }

  /** Drops what this tick's entries point at (connections, payload views), keeping the arrays. */
  clear(): void {
    const n = this.count;
    this.count = 0;
    this.bytes = NOTHING;
    if (n > KEEP_ENTRIES) {
      this.ends = [];
      this.origins = [];
      this.ids = [];
      this.tss = [];
      this.data = [];
      this.transient = [];
      return;
    }
    const { origins, ids, tss, data } = this;
    for (let i = 0; i < n; i++) {
      origins[i] = NOBODY;
      ids[i] = '';
      tss[i] = 0n;
      data[i] = NOTHING;
    }
  }
}

/** The publishes waiting for one store promise: one group commit, as parallel arrays. */
class PublishBatch {
  readonly promise: Promise<PublishOutcome>;
  readonly publishers: Publisher[] = [];
  readonly frames: Publication[] = [];
  result: PublishOutcome | undefined;
  error: unknown;
  /** When its first publish was handed to the store. */
  readonly startedAt = performance.now();

  constructor(promise: Promise<PublishOutcome>) {
    this.promise = promise;
  }
}

/**
 * What the server sends in one turn of the event loop, handed out once after the turn's
 * I/O (server.ts `#flush`): the messages broadcast in the turn and the publishes the
 * store settled in it.
 *
 * Settling is part of the tick. The store settles every append of a group commit with
 * one shared promise, so the publishes waiting for it form one batch, with one `then`
 * per batch and no closure per message (`stored`). That `then` settles the batch into
 * the tick, in the order the store settled them, and schedules the flush, which hands
 * out the tick's messages, then each connection's own frames. For each publish
 * of a batch, in the store's order, an accepted one is broadcast (encoded into this
 * tick's messages), and then its publisher is told: a native session queues its ack
 * among its own frames (handlers/publish.ts). The server queues a tick's broadcast to a
 * connection ahead of that connection's own frames of the tick, so an echo comes right
 * before its ack (A4), and no ack, nor a pong whose newest ts already covers a settled
 * batch, gets ahead of a message it covers. Legacy publishes go through the same
 * batches, so the broadcast follows the store's order whoever published.
 */
export class Tick {
  readonly #schedule: () => void;
  /** Publish → ack, one observation per batch (stats.ts `publishAckSeconds`). */
  readonly #ackSeconds: Buckets;
  readonly #enc = new FrameEncoder({ slabBytes: 256 * 1024 });
  /** The legacy form of the messages: made once the first legacy client is live. */
  #legacyEnc: LegacyEncoder | undefined;
  readonly #messages = new TickMessages();
  /** The batch publishes join while its promise is pending. */
  #open: PublishBatch | undefined;
  /** Batches the store settled, in that order, for the next flush. */
  #settled: PublishBatch[] = [];
  /**
   * The store promise last observed in `#ackSeconds`. One group commit may come back as
   * several batches (its publishes interleaved with stale ones, which share the store's
   * one stale promise): it is observed once, from its first batch, the earliest.
   */
  #observed: Promise<PublishOutcome> | undefined;

  /** `schedule` asks for a flush after this turn's I/O; `ackSeconds` takes each batch's publish → ack time. */
  constructor(schedule: () => void, ackSeconds = new Buckets(SECONDS_BUCKETS)) {
    this.#schedule = schedule;
    this.#ackSeconds = ackSeconds;
  }

  /** Queues a message for every live connection. */
  broadcast(origin: Origin, transient: boolean, id: string, ts: bigint, data: Uint8Array): void {
    this.#message(origin, transient, id, ts, data);
    this.#schedule();
  }

  #message(origin: Origin, transient: boolean, id: string, ts: bigint, data: Uint8Array): void {
    this.#enc.message(transient ? MessageFlags.Transient : 0, id, ts, data);
    this.#messages.add(origin, transient, id, ts, data, this.#enc.pendingBytes);
  }

  /** `publisher`'s publish `f`, settled by the flush after the store settles `stored`. */
  stored(publisher: Publisher, f: Publication, stored: Promise<PublishOutcome>): void {
    let batch = this.#open;
    if (batch === undefined || batch.promise !== stored) {
      const b = new PublishBatch(stored);
      batch = this.#open = b;
      stored.then(
        (result) => this.#ready(b, result, undefined),
        (error: unknown) => this.#ready(b, undefined, error),
      );
    }
    batch.publishers.push(publisher);
    batch.frames.push(f);
  }

  #ready(batch: PublishBatch, result: PublishOutcome | undefined, error: unknown): void {
    // A settled batch takes no more publishes: the next append of its promise (the
    // store's shared stale promise, say) starts a new one.
    if (this.#open === batch) this.#open = undefined;
    batch.result = result;
    batch.error = error;
    // Settled as soon as the store settles it, into this tick (its broadcasts, its acks),
    // rather than held until the flush: its frames are let go of sooner, which is about
    // 4 % of pipelined publish throughput. The order rules hold either way: the flush
    // hands the tick's messages to the connections before their own frames (A4).
    this.#settled.push(batch);
    this.#settle();
    this.#schedule();
  }

  /**
   * The tick's work: hands this tick's messages, if any, to `deliver`, and clears them
   * (batches the store settled are already in them).
   */
  flush(deliver: (messages: TickMessages) => void): void {
    if (this.#settled.length > 0) this.#settle();
    const messages = this.#messages;
    if (messages.count === 0) return;
    messages.bytes = this.#enc.take();
    try {
      deliver(messages);
    } finally {
      messages.clear();
    }
  }

  #settle(): void {
    const settled = this.#settled;
    this.#settled = [];
    const now = performance.now();
    for (const batch of settled) {
      // a group commit, written or failed, once; stale publishes were never one
      if (batch.result?.status !== 'stale' && batch.promise !== this.#observed) {
        this.#observed = batch.promise;
        this.#ackSeconds.observe((now - batch.startedAt) / 1000);
      }
      const { publishers, frames, result, error } = batch;
      const accepted = result?.status === 'accepted' && result !== SUPERSEDED;
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i] as Publication;
        const publisher = publishers[i] as Publisher;
        if (accepted) this.#message(publisher, false, f.id, f.ts, f.data);
        publisher.settled(f, result, error);
      }
    }
  }

  /**
   * The legacy form of `messages` (L2, L4), encoded once for every legacy connection from
   * what the messages were made of. Returns bytes the encoder never writes again.
   */
  legacy(messages: TickMessages): Buffer {
    const enc = (this.#legacyEnc ??= new LegacyEncoder({ slabBytes: 256 * 1024 }));
    const { count, ids, tss, data, transient } = messages;
    for (let i = 0; i < count; i++) {
      const kind = transient[i] ? LegacyKind.Transient : LegacyKind.Persisted;
      enc.message(kind, ids[i] as string, tss[i] as bigint, data[i] as Uint8Array);
    }
    return enc.take();
  }
}

/** The frames of a tick's messages that did not come from `origin` (echo off), and how many. */
export function withoutOrigin(messages: TickMessages, origin: Origin): { bytes: Buffer; count: number } {
  const { count, bytes, ends, origins } = messages;
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = ends[i] as number;
    if (origins[i] !== origin) parts.push(bytes.subarray(start, end));
    start = end;
  }
  return { bytes: parts.length === count ? bytes : Buffer.concat(parts), count: parts.length };
}
