import type { Entry } from './fanout.js';

/**
 * The order an edge's copy applies the stream in (docs/CLUSTER.md, "Following the
 * stream"). Messages come two ways: a consumer reading the stream (at the start, while
 * behind, after a gap), or the entries the edges hand over over core NATS once the copy
 * has caught up (the fan-out). Either way each sequence is applied once, in order: a
 * fan-out entry past a gap waits for those before it; a gap no edge fills within
 * `gapMs` is read from the stream's leader when short, or left to the consumer when long,
 * when the leader does not say, or when waiting entries would hold more than
 * `earlyMaxBytes`.
 */
export interface SequencerHooks {
  /** One message, in the stream's order; `pending`: how many the edge knows of past it. */
  apply(e: Entry, pending: number): void;
  /**
   * The stream's first message at or after `seq`, as its leader holds it; null when it
   * holds none (which says nothing sure: a leader just elected may not have applied all
   * it took).
   */
  readFrom(seq: number): Promise<Entry | null>;
}

export interface SequencerLimits {
  /** How long entries past a gap wait for it before the stream is asked. */
  readonly gapMs: number;
  /** A gap of at most this many messages is read message by message (hooks.readFrom); a longer one by the consumer. */
  readonly gapReadMax: number;
  /** Bytes of entries held past a gap, at most (earlyCost): past it the consumer reads the stream. */
  readonly earlyMaxBytes: number;
}

/** Memory an entry takes while it waits, beyond its subject and body: its object and map slot, about. */
const EARLY_ENTRY_BYTES = 128;

/** What a waiting entry counts against earlyMaxBytes: empty bodies under long subjects too. */
export function earlyCost(e: Entry): number {
  return EARLY_ENTRY_BYTES + e.subject.length + e.body.byteLength;
}

/** A fan-out entry waiting for those before it, and when it came. */
interface Early extends Entry {
  readonly arrivedAt: number;
}

export class Sequencer {
  readonly #hooks: SequencerHooks;
  readonly #limits: SequencerLimits;
  #mode: 'consumer' | 'fanout' = 'consumer';
  /** The last sequence handed to hooks.apply. */
  #dispatched = 0;
  /** Fan-out entries past #dispatched, by sequence, waiting for those before them. */
  readonly #early = new Map<number, Early>();
  #earlyBytes = 0;
  /** The highest sequence an entry named. */
  #highest = 0;
  /** A gap is being read from the stream (#fillGap). */
  #filling = false;
  #gapTimer: NodeJS.Timeout | undefined;
  /** Wakes the consumer's loop (untilConsumer). */
  #wake: (() => void) | undefined;
  #gaps = 0;
  #closed = false;

  constructor(hooks: SequencerHooks, limits: SequencerLimits) {
    this.#hooks = hooks;
    this.#limits = limits;
  }

  /** Who brings the next messages: the consumer, or the fan-out. */
  get mode(): 'consumer' | 'fanout' {
    return this.#mode;
  }

  /** The last sequence handed to hooks.apply. */
  get dispatched(): number {
    return this.#dispatched;
  }

  /** Gaps the fan-out left that the stream was asked for (gossip_cluster_fanout_gaps_total). */
  get gaps(): number {
    return this.#gaps;
  }

  /** Entries waiting past a gap, and the bytes they count. */
  get waiting(): { entries: number; bytes: number } {
    return { entries: this.#early.size, bytes: this.#earlyBytes };
  }

  /** The consumer reads on after `applied`, the copy's position. */
  startAt(applied: number): void {
    this.#dispatched = applied;
  }

  /** A message the consumer read: applied unless it was already; whether it was. */
  take(seq: number, subject: string, body: Uint8Array, pending: number): boolean {
    if (seq <= this.#dispatched) return false;
    this.#dispatched = seq;
    this.#dropEarly(seq);
    this.#hooks.apply({ seq, subject, body }, pending);
    return true;
  }

  /** An entry of the fan-out: applied in the stream's order, once those before it are. */
  arrive(e: Entry): void {
    if (this.#closed || e.seq <= this.#dispatched || this.#early.has(e.seq)) return;
    if (e.seq > this.#highest) this.#highest = e.seq;
    if (this.#mode === 'fanout' && e.seq === this.#dispatched + 1) {
      // the next one, as nearly always: applied at once, then any that waited for it
      this.#dispatched = e.seq;
      this.#hooks.apply(e, this.#highest - e.seq);
      if (this.#early.size > 0) this.#drain();
      return;
    }
    const cost = earlyCost(e);
    if (this.#earlyBytes + cost > this.#limits.earlyMaxBytes) {
      this.toConsumer(); // a gap held too long: the stream has them all
      return;
    }
    // copied into a buffer of its own: a view would hold its whole batch (or pool block) while it waits
    const body = Uint8Array.prototype.slice.call(e.body);
    this.#early.set(e.seq, { seq: e.seq, subject: e.subject, body, id: e.id, arrivedAt: performance.now() });
    this.#earlyBytes += cost;
    this.#drain();
  }

  /**
   * Drops the entries past `last`, the stream's last sequence as its leader said when
   * asked at `asked` (performance.now()), that came before it was asked: none the stream took.
   */
  dropBeyond(last: number, asked: number): void {
    let highest = Math.max(this.#dispatched, last);
    for (const e of this.#early.values()) {
      if (e.seq > last && e.arrivedAt < asked) this.#dropEarly(e.seq);
      else if (e.seq > highest) highest = e.seq;
    }
    this.#highest = highest;
  }

  /** The copy is at the stream's end: the fan-out brings what comes next. */
  toFanout(): void {
    if (this.#closed) return;
    this.#mode = 'fanout';
    this.#dropThrough(this.#dispatched);
    this.#drain();
  }

  /** A gap, a reconnect, a stall, a store error: the consumer reads the stream from the copy's position. */
  toConsumer(count = true): void {
    if (this.#mode !== 'fanout') return;
    this.#mode = 'consumer';
    if (count) this.#gaps++;
    clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    this.#wake?.();
  }

  /** Resolves once the consumer is needed (toConsumer), or the sequencer is closed. */
  untilConsumer(): Promise<void> {
    if (this.#mode !== 'fanout' || this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#gapTimer);
    this.#gapTimer = undefined;
    this.#wake?.();
  }

  #dropEarly(seq: number): void {
    const e = this.#early.get(seq);
    if (e === undefined) return;
    this.#early.delete(seq);
    this.#earlyBytes -= earlyCost(e);
  }

  /** Drops the entries at or below `seq`: applied or passed. */
  #dropThrough(seq: number): void {
    for (const s of this.#early.keys()) if (s <= seq) this.#dropEarly(s);
  }

  /** Applies the entries that follow the last one applied; past a gap, waits gapMs for it, then reads it. */
  #drain(): void {
    if (this.#mode !== 'fanout' || this.#closed) return;
    for (let e = this.#early.get(this.#dispatched + 1); e !== undefined; e = this.#early.get(this.#dispatched + 1)) {
      this.#dropEarly(e.seq);
      this.#dispatched = e.seq;
      this.#hooks.apply(e, Math.max(0, this.#highest - e.seq));
    }
    if (this.#early.size === 0 || this.#gapTimer !== undefined) return;
    const at = this.#dispatched;
    this.#gapTimer = setTimeout(() => {
      this.#gapTimer = undefined;
      if (this.#mode !== 'fanout' || this.#early.size === 0 || this.#closed) return;
      // a message no edge handed over (a lost answer, an edge that died, a foreign write)
      if (this.#dispatched === at) void this.#fillGap();
      else this.#drain(); // moved on since: a later gap gets its own wait
    }, this.#limits.gapMs);
  }

  /**
   * Reads a short gap from the stream's leader, message by message; a long one, or one
   * the stream does not answer, is left to the consumer. The leader is asked for the
   * first message at or after the missing sequence: the sequences it passes over, its
   * store holds nothing at though it holds one past them, so newer writes of their ids
   * replaced them, and the copy passes them too. No message at all says nothing sure:
   * then the consumer reads.
   */
  async #fillGap(): Promise<void> {
    if (this.#filling) {
      this.#drain(); // the read under way ends; the wait goes on meanwhile
      return;
    }
    this.#filling = true;
    this.#gaps++;
    try {
      for (;;) {
        const seq = this.#dispatched + 1;
        let lowest = Number.POSITIVE_INFINITY;
        this.#dropThrough(seq - 1); // passed already
        for (const s of this.#early.keys()) if (s < lowest) lowest = s;
        if (lowest === Number.POSITIVE_INFINITY || lowest <= seq) return; // nothing waits, or nothing is missing now
        if (lowest - seq > this.#limits.gapReadMax) {
          this.toConsumer(false); // counted above
          return;
        }
        const m = await this.#hooks.readFrom(seq);
        if (this.#mode !== 'fanout' || this.#closed || this.#dispatched >= seq) return; // filled meanwhile
        if (m === null || m.seq < seq) {
          this.toConsumer(false); // counted above
          return;
        }
        if (m.seq > seq) {
          // replaced in the stream: passed, as a consumer passes them
          this.#dispatched = m.seq - 1;
          this.#dropThrough(this.#dispatched);
        }
        this.arrive(m);
        this.#drain();
      }
    } catch {
      this.toConsumer(false); // counted above
    } finally {
      this.#filling = false;
      this.#drain();
    }
  }
}
