import {
  type Epoch,
  type ErrorCode,
  type FrameEncoder,
  GossipError,
  type HelloFrame,
  MIN_TS,
  ResyncReason,
} from '@gossip/protocol';
import type { RecordBatch, Store } from '@gossip/store';
import type { ServerContext } from './context.js';
import type { Outbound } from './outbound.js';
import { pacing } from './pacing.js';
import { ReadCredit } from './read-credit.js';
import { replayFrames } from './replay-frames.js';
import type { PrefixSet } from './session.js';
import type { TickMessages } from './tick.js';

/**
 * Where a subscription is: waiting for its turn to replay, replaying, done (its live
 * messages flow), or dropped (unsubscribed, or its connection closed).
 */
export type SubscriptionState = 'waiting' | 'replaying' | 'done' | 'dropped';

/** One prefix a connection holds (docs/PROTOCOL.md, B1), with the replay it asked for. */
export class Subscription {
  /** The connection that holds it: the server's index of prefixes hands it the messages it matches. */
  readonly owner: SubscriptionHost;
  readonly prefix: string;
  /** Replay from this ts; null: live only (R4). */
  readonly since: bigint | null;
  /** The log identity `since` was taken on (H4). */
  readonly epoch: Epoch | null;
  /**
   * Named by the hello's `prefixes` or by a subscribe: its replay ends with a prefix-done
   * (B5). Otherwise it is the one prefix "" of a hello that named none, whose replay ends
   * with a replay-done, as R1 to R4 say.
   */
  readonly named: boolean;
  state: SubscriptionState = 'waiting';
  /** Set while its replay waits (for read credit, for the client): called when it is dropped. */
  wake: (() => void) | undefined;
  /** Stops the store's replay when the connection closes. */
  abort: AbortController | undefined;
  /** Set when it was dropped while replaying: called once its replay queues nothing more. */
  stopped: (() => void) | undefined;

  constructor(owner: SubscriptionHost, prefix: string, since: bigint | null, epoch: Epoch | null, named: boolean) {
    this.owner = owner;
    this.prefix = prefix;
    this.since = since;
    this.epoch = epoch;
    this.named = named;
  }

  get done(): boolean {
    return this.state === 'done';
  }
}

/**
 * What a connection's subscriptions need of it, and what the server's matching hands
 * it (connection.ts implements it).
 */
export interface SubscriptionHost {
  /** For logs. */
  readonly id: number;
  /** Whether it gets its own publishes and emits back (H1). */
  readonly echo: boolean;
  readonly ctx: ServerContext;
  /** The connection's own frames: resyncs and dones are encoded here. */
  readonly enc: FrameEncoder;
  readonly out: Outbound;
  readonly closed: boolean;
  touch(): void;
  /**
   * Hands out the messages broadcast so far in this turn (server.ts), before anything of
   * the connection's own is queued outside the turn's flush: so an echo still comes
   * ahead of its ack, a pong after the messages it covers (A4, K2), and a message under a
   * prefix whose replay ends now after that prefix-done (B5).
   */
  deliverTick(): void;
  /** Replayed frames, behind the own frames encoded so far, handed to the socket. */
  sendReplayed(chunks: readonly Buffer[]): void;
  /** `sub`'s replay ended and its done frame is encoded (R2, B5): what it held back follows. */
  replayEnded(sub: Subscription): void;
  /**
   * From now on the connection's messages are matched prefix by prefix: its first
   * subscribe or unsubscribe after a hello that named no prefixes, which held "" (B1).
   */
  scope(): void;
  /** `sub` joins (true) or leaves (false) the server's matching of prefixes to connections. */
  matching(sub: Subscription, on: boolean): void;
  /** `sub` was dropped: the live messages held for it alone go. */
  dropped(sub: Subscription): void;
  fatal(code: ErrorCode, message: string): void;
  /**
   * The server's matching (server.ts): message `i` of this tick matched `sub`; returns
   * true when it is the connection's first match of the tick.
   */
  match(i: number, sub: Subscription): boolean;
  /** The messages of the tick it matched, sent or held as their prefixes' replays say (B5). */
  deliverMatched(messages: TickMessages): void;
}

/**
 * A connection's prefixes and their replays (docs/PROTOCOL.md, B1 to B7): the set the
 * hello names (or its one prefix "", B1), changed by subscribe and unsubscribe (B3,
 * B4). Each prefix with a since is replayed on its own, as R1 and R3 replay a hello's
 * since, scoped to its ids; one replay at a time, in the order they were asked for, the
 * others waiting in a queue no longer than the connection's prefixes (B5). Every replay
 * of the connection reads the store against one read credit (read-credit.ts, B7).
 */
export class Subscriptions implements PrefixSet {
  readonly #host: SubscriptionHost;
  readonly #credit: ReadCredit;
  readonly #subs = new Map<string, Subscription>();
  /** Subscriptions waiting for their turn to replay, in order. */
  #queue: Subscription[] = [];
  /** Live-only subscriptions not yet done: `run` ends them at once (R4, B5). */
  #instant: Subscription[] = [];
  #running = false;
  #scoped = false;

  constructor(host: SubscriptionHost) {
    this.#host = host;
    this.#credit = new ReadCredit(host.out, host.ctx.options.maxOutboundBytes);
  }

  /**
   * Whether the connection's messages are matched prefix by prefix: it named prefixes
   * (hello or subscribe) or dropped one. Otherwise it holds only "" and receives
   * everything, with the hello's replay rules (R1), by the server's plain broadcast.
   */
  get scoped(): boolean {
    return this.#scoped;
  }

  get size(): number {
    return this.#subs.size;
  }

  has(prefix: string): boolean {
    return this.#subs.has(prefix);
  }

  values(): IterableIterator<Subscription> {
    return this.#subs.values();
  }

  /**
   * The hello's subscriptions (B2): its `prefixes` in order, each with its own since and
   * the hello's epoch, or, when it named none, the one prefix "" with its since (B1).
   * Matched from now on; `run` then starts their replays.
   */
  start(hello: HelloFrame): void {
    if (hello.prefixes === undefined) {
      this.#add('', hello.since, hello.epoch, false);
    } else {
      this.#scoped = true;
      for (const p of hello.prefixes) this.#add(p.prefix, p.since, hello.epoch, true);
    }
  }

  /**
   * Ends at once the replays of the live-only prefixes added since the last call, and
   * starts the queue's first replay if none runs: it runs up to its first read in this
   * call, so its resync follows what the connection has just encoded (R3, B6).
   */
  run(): void {
    for (const sub of this.#instant.splice(0)) {
      if (sub.state === 'waiting') this.#done(sub, 0, this.#host.ctx.store.newestTs ?? MIN_TS, false);
    }
    void this.#replayQueue();
  }

  /** Adds `prefix` (B3; the caller checked it and acked): matched from now on, replayed in its turn. */
  subscribe(prefix: string, since: bigint | null, epoch: Epoch | null): void {
    this.#scope();
    this.#add(prefix, since, epoch, true);
    this.run();
  }

  /**
   * Drops `prefix` (B4): no longer matched, and its replay, waiting or running, stops
   * without its done frame. `stopped` is called once nothing more of its replay will be
   * queued: at once, or, when a batch of it was being read, once that batch is queued.
   * So every batch a replay reads, but the one the store reads ahead, reaches the queue
   * and is paid for by the client taking it (read-credit.ts), and the unsubscribe's ack
   * comes after it (B4: frames queued before the ack may come before it).
   */
  unsubscribe(prefix: string, stopped: () => void = () => undefined): void {
    const sub = this.#subs.get(prefix);
    if (sub === undefined) {
      stopped();
      return;
    }
    this.#scope();
    const running = sub.state === 'replaying';
    this.#drop(sub);
    this.#host.dropped(sub);
    if (running) sub.stopped = stopped;
    else stopped();
  }

  /** The connection closed: every subscription is dropped, and the store's replay aborted. */
  close(): void {
    for (const sub of this.#subs.values()) {
      this.#drop(sub);
      sub.abort?.abort();
    }
  }

  #drop(sub: Subscription): void {
    this.#subs.delete(sub.prefix);
    if (this.#scoped) this.#host.matching(sub, false);
    const waiting = sub.state === 'waiting';
    sub.state = 'dropped';
    if (waiting) {
      this.#queue = this.#queue.filter((s) => s !== sub);
      this.#instant = this.#instant.filter((s) => s !== sub);
    }
    sub.wake?.();
  }

  #scope(): void {
    if (this.#scoped) return;
    this.#scoped = true;
    this.#host.scope();
    for (const sub of this.#subs.values()) this.#host.matching(sub, true);
  }

  #add(prefix: string, since: bigint | null, epoch: Epoch | null, named: boolean): void {
    const sub = new Subscription(this.#host, prefix, since, epoch, named);
    this.#subs.set(prefix, sub);
    if (this.#scoped) this.#host.matching(sub, true);
    // Live only: done at once, with the newest ts then (R4, B5), wherever it stands in the queue.
    if (since === null) this.#instant.push(sub);
    else this.#queue.push(sub);
  }

  /** Replays the queue one subscription at a time; the first runs up to its first read in this call. */
  async #replayQueue(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      for (let sub = this.#queue.shift(); sub !== undefined && !this.#host.closed; sub = this.#queue.shift()) {
        await this.#replay(sub);
      }
    } finally {
      this.#running = false;
    }
  }

  /**
   * One subscription's replay (R1, R3, B5, B6): once the read credit allows its first
   * batch, which replay it gets (a resync and a snapshot of its ids when its since cannot
   * be trusted), its records under its prefix at the reader's pace, then its done frame.
   * A dropped subscription stops where it is and gets no done frame.
   */
  async #replay(sub: Subscription): Promise<void> {
    const host = this.#host;
    const { store, stats, options } = host.ctx;
    sub.state = 'replaying';
    const startedAt = performance.now();
    const abort = new AbortController();
    sub.abort = abort;
    const open = () => !host.closed && !host.out.socket.destroyed;
    const alive = () => sub.state === 'replaying' && open();
    const { highWater, batchBytes } = pacing(options.maxOutboundBytes);
    // The store reads a batch ahead of the one it hands out: the first read is charged for two.
    let charge = 2 * batchBytes;
    let charged = 0;
    let read = 0;
    let count = 0;
    let plan: { snapshot: boolean; newestTs: bigint } | undefined;
    let records: AsyncIterator<RecordBatch> | undefined;
    try {
      for (;;) {
        // Every byte the socket takes gives credit back, so the next pump may have given enough.
        while (!this.#credit.take(charge)) {
          await this.#wait(sub, host.out.whenPumped());
          if (!alive()) return;
        }
        charged += charge;
        charge = batchBytes;
        if (records === undefined) {
          // Decided in the same turn as the store's plan, so that no compaction comes between (R3).
          plan = this.#plan(sub, store);
          stats.replays++;
          records = store
            .replayRecords(plan.snapshot ? null : sub.since, { batchBytes, signal: abort.signal, prefix: sub.prefix })
            [Symbol.asyncIterator]();
        }
        const next = await records.next();
        if (!open()) return;
        // Dropped while the store was still reading: ended without its done frame.
        if (next.done) {
          if (!alive()) return;
          break;
        }
        // Queued even when the prefix was dropped meanwhile: ahead of the unsubscribe's ack.
        read += next.value.bytes;
        stats.replayBytes += next.value.bytes;
        // Records go out as they lie on disk, re-framed: a record's body is a message
        // frame's body (docs/STORAGE.md, S10).
        const frames = replayFrames(next.value);
        host.sendReplayed(frames.chunks);
        count += frames.count;
        if (!alive()) return;
        // At the reader's pace (R1): waits while more than the high water waits for the client.
        if (host.out.pendingBytes > highWater) {
          await this.#wait(sub, host.out.whenBelow(highWater));
          if (!alive()) return;
        }
      }
    } catch (error) {
      if (!alive()) return; // closed (the store's replay aborted), or dropped as it failed
      host.ctx.log.error({ conn: host.id, err: error, prefix: sub.prefix }, 'replay failed');
      host.fatal(error instanceof GossipError ? error.code : 'GOSSIP_ERR_INTERNAL', 'replay failed');
      return;
    } finally {
      sub.abort = undefined;
      sub.wake = undefined;
      if (!alive()) {
        // Cut short: the store's generator lets go of its windows, and the unsubscribe is acked.
        void records?.return?.();
        const stopped = sub.stopped;
        sub.stopped = undefined;
        stopped?.();
      }
    }
    // The replay read all its batches: what the first charge took for the batch after the last is back.
    this.#credit.refund(charged - read);
    stats.replayedMessages += count;
    stats.replaySeconds.observe((performance.now() - startedAt) / 1000);
    const { snapshot, newestTs } = plan as { snapshot: boolean; newestTs: bigint };
    this.#done(sub, count, newestTs, snapshot);
  }

  /**
   * The replay `sub` gets now: a resync (sent now) and a snapshot of its ids when R3
   * applies, and the newest persisted ts, at least every ts the store's plan, made next,
   * holds (R2).
   */
  #plan(sub: Subscription, store: Store): { snapshot: boolean; newestTs: bigint } {
    const host = this.#host;
    const reason = resyncReason(sub.since, sub.epoch, store);
    if (reason !== undefined) {
      host.ctx.stats.resyncs++;
      if (sub.named) host.enc.prefixResync(sub.prefix, reason, store.horizon);
      else host.enc.resync(reason, store.horizon);
      host.touch();
    }
    return { snapshot: reason !== undefined, newestTs: store.newestTs ?? MIN_TS };
  }

  /** `sub`'s replay is over: its done frame, then what it held back (R2, R4, B5). */
  #done(sub: Subscription, count: number, newestTs: bigint, snapshot: boolean): void {
    this.#host.deliverTick();
    sub.state = 'done';
    const enc = this.#host.enc;
    if (sub.named) enc.prefixDone(sub.prefix, count, newestTs, snapshot);
    else enc.replayDone(count, newestTs, snapshot);
    this.#host.replayEnded(sub);
  }

  /**
   * Resolves when `ready` does, or when `sub` is dropped. `ready` waits for the socket to
   * take more (outbound.ts `whenPumped`, `whenBelow`): past the socket's own high water a
   * `drain`, and so a pump, is sure to come.
   */
  #wait(sub: Subscription, ready: Promise<void>): Promise<void> {
    return new Promise((resolve) => {
      sub.wake = resolve;
      ready.then(resolve, resolve);
    });
  }
}

/**
 * Why a replay from `since` cannot be trusted, in the order R3 checks (H3, H4), or
 * undefined for a plain replay; live only (no since) gets none (R4). For a prefix (B6)
 * the same checks against the one horizon of the log: a snapshot a narrower horizon
 * might not need, never too few.
 */
export function resyncReason(
  since: bigint | null,
  epoch: Epoch | null,
  store: Pick<Store, 'epoch' | 'horizon'>,
): ResyncReason | undefined {
  if (since === null) return undefined;
  if (epoch !== null && epoch !== store.epoch) return ResyncReason.Epoch;
  if (store.horizon !== null && since <= store.horizon) return ResyncReason.Horizon;
  if (since === MIN_TS && epoch === null) return ResyncReason.Full;
  return undefined;
}
