import { GossipError, InvalidArgumentError, InvalidIdError } from '@gossip/protocol';
import { RECORD_OVERHEAD_BYTES, writeRecord } from './format.js';
import { IndexTable } from './index-table.js';
import type { StoreLogger } from './options.js';
import {
  checkWindow,
  type RecordBatch,
  type ReplayOptions,
  ReplayWindow,
  type StoredMessage,
  windowMessages,
} from './replay-window.js';
import type { Segment } from './segment.js';
import type { SegmentSet } from './segments.js';

export type { RecordBatch, ReplayOptions, ReplayPlan, StoredMessage } from './replay-window.js';
export { checkWindow, ReplayWindow, windowMessages } from './replay-window.js';

const READ_GAP = 32 * 1024;
/**
 * Reads: a group of neighbours up to this size is read blocking (`Segment.readNow`)
 * while the window's blocking reads have taken less than `SYNC_READ_BUDGET_MS`. A
 * small read from the page cache takes about 1 µs that way and 5 to 10 µs through the
 * thread pool, which a replay of scattered records (a prefix's: one group per record)
 * pays per record. The budget bounds the stall when the records are not cached: the
 * rest of the window's groups then go through the thread pool as large groups always do.
 */
const SYNC_READ_BYTES = 16 * 1024;
const SYNC_READ_BUDGET_MS = 2;
const DEFAULT_BATCH_BYTES = 1024 * 1024;
const noop = () => undefined;

export interface ReplayerOptions {
  index: IndexTable;
  segments: SegmentSet;
  log: StoreLogger;
  /** Whether the store closed: a replay stops with `GOSSIP_ERR_STORE_CLOSED`. */
  closed: () => boolean;
}

/**
 * Replay (docs/STORAGE.md, "Replay"): the plan, then windows of records read with as
 * few reads as possible and checked, handed out as record batches or decoded messages.
 */
export class Replayer {
  readonly #o: ReplayerOptions;
  readonly #bad = (w: ReplayWindow, k: number): void => {
    this.#o.log.warn(
      { segment: this.#o.segments.get(w.seg[k] as number)?.name, offset: w.off[k] },
      'replay skipped a record that fails its checksum',
    );
  };

  constructor(options: ReplayerOptions) {
    this.#o = options;
  }

  /** The replay's checked records, a window at a time (see `RecordBatch`). */
  async *records(since: bigint | null, options: ReplayOptions = {}): AsyncGenerator<RecordBatch> {
    for await (const w of this.#windows(since, options)) if (w.count > 0) yield w;
  }

  /** The replay's messages, a window at a time. */
  async *messages(since: bigint | null, options: ReplayOptions = {}): AsyncGenerator<StoredMessage[]> {
    for await (const w of this.#windows(since, options)) if (w.count > 0) yield windowMessages(w);
  }

  /**
   * The replay's plan, then its windows, each read with as few reads as possible and
   * checked: up to `batchBytes` of records whose ids still hold their planned ts when
   * cut. The next window is cut and its read started before the current one is handed
   * out, so the reads overlap the consumer's work.
   */
  async *#windows(since: bigint | null, options: ReplayOptions): AsyncGenerator<ReplayWindow> {
    const batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
    const index = this.#o.index;
    const plan = index.plan(since, checkPrefix(options.prefix));
    const capacity = Math.min(plan.n, Math.ceil(batchBytes / RECORD_OVERHEAD_BYTES) + 1);
    // Two windows take turns: one being consumed, the next being read.
    const windows = [new ReplayWindow(capacity), new ReplayWindow(capacity)];
    let turn = 0;
    let i = 0;
    const check = () => {
      if (options.signal?.aborted) {
        throw new GossipError('GOSSIP_ERR_ABORTED', 'the replay was aborted', { cause: options.signal.reason });
      }
      if (this.#o.closed()) throw new GossipError('GOSSIP_ERR_STORE_CLOSED', 'the store closed during a replay');
    };
    const next = (): { w: ReplayWindow; read: Promise<void> } | undefined => {
      while (i < plan.n) {
        check();
        const w = windows[turn] as ReplayWindow;
        i = index.cut(plan, i, batchBytes, w);
        if (w.count === 0) continue;
        turn ^= 1;
        const read = this.#read(w);
        read.catch(noop); // awaited below; a consumer that stops early leaves the last one unawaited
        return { w, read };
      }
      return undefined;
    };
    let current = next();
    while (current) {
      await current.read;
      const ahead = next();
      check();
      // Cut before the previous window was consumed: ids updated since are left out now.
      index.recheck(plan, current.w);
      checkWindow(current.w, plan, this.#bad);
      yield current.w;
      current = ahead;
    }
  }

  /**
   * Reads a window's records with as few reads as possible: neighbours in one file go
   * in one read, a small gap of dead records being cheaper than a syscall. Ts order is
   * usually file order already (appends come in ts order; compaction keeps it): then
   * one pass groups the items; otherwise they are sorted by place first.
   */
  async #read(w: ReplayWindow): Promise<void> {
    const segments = this.#o.segments;
    const n = w.count;
    const segs = w.seg;
    const offs = w.off;
    const sizes = w.size;
    const bufOf = w.buf;
    const ats = w.at;
    const reads: Promise<void>[] = [];
    const until = performance.now() + SYNC_READ_BUDGET_MS;
    // Groups of neighbours in file order, each read as start..end of its segment; the
    // items' places in the group's buffer are set on the way.
    const groups: { seg: Segment | undefined; start: number; end: number }[] = [];
    let k = 0;
    while (k < n && w.inOrder) {
      const handle = segs[k] as number;
      const seg = segments.get(handle);
      const start = offs[k] as number;
      let end = start + (sizes[k] as number);
      const b = groups.length;
      bufOf[k] = b;
      ats[k] = 0;
      let j = k + 1;
      for (; j < n; j++) {
        const off = offs[j] as number;
        if (segs[j] !== handle || off > end + READ_GAP) break;
        if (off < end) {
          w.inOrder = false; // behind the previous record: not in file order
          break;
        }
        bufOf[j] = b;
        ats[j] = off - start;
        end = off + (sizes[j] as number);
      }
      const next = j < n && segs[j] !== handle ? segments.get(segs[j] as number) : undefined;
      if (next && seg && next.first < seg.first) w.inOrder = false;
      if (!seg) sizes.fill(0, k, j); // cannot happen: the index never points into a removed segment
      groups.push({ seg, start, end });
      k = j;
    }
    if (w.inOrder) for (const g of groups) this.#readGroup(w, g.seg, g.start, g.end, reads, until);
    if (!w.inOrder) {
      // In file order first.
      const first = (k: number) => segments.get(segs[k] as number)?.first ?? 0;
      const order = Array.from({ length: n }, (_, k) => k);
      order.sort((a, b) => first(a) - first(b) || (offs[a] as number) - (offs[b] as number));
      let g = 0;
      while (g < n) {
        const head = order[g] as number;
        const seg = segments.get(segs[head] as number);
        const start = offs[head] as number;
        let end = start + (sizes[head] as number);
        let j = g + 1;
        for (; j < n; j++) {
          const item = order[j] as number;
          if (segs[item] !== segs[head] || (offs[item] as number) > end + READ_GAP) break;
          end = Math.max(end, (offs[item] as number) + (sizes[item] as number));
        }
        const b = this.#readGroup(w, seg, start, end, reads, until);
        for (let m = g; m < j; m++) {
          const item = order[m] as number;
          bufOf[item] = b;
          ats[item] = (offs[item] as number) - start;
          if (!seg) sizes[item] = 0;
        }
        g = j;
      }
    }
    await Promise.all(reads);
  }

  /**
   * Reads `start..end` of `seg` into a new buffer of window `w`, blocking if it is small
   * and the window's budget (`until`) holds, else by a read added to `reads`; returns the
   * buffer's number. A blocking read that fails goes into `reads` as a failed read, not
   * thrown: the reads already started for the window are then still awaited together, so
   * none of them fails unhandled.
   */
  #readGroup(
    w: ReplayWindow,
    seg: Segment | undefined,
    start: number,
    end: number,
    reads: Promise<void>[],
    until: number,
  ): number {
    const size = end - start;
    const b = w.addBuffer(Buffer.allocUnsafe(size));
    if (!seg) return b;
    const buf = w.bufs[b] as Buffer;
    if (size <= SYNC_READ_BYTES && performance.now() < until) {
      try {
        if (seg.readNow(buf, start, size)) return b;
      } catch (error) {
        reads.push(Promise.reject(error));
        return b;
      }
    }
    reads.push(seg.read(buf, start, size));
    return b;
  }
}

/**
 * A replay's prefix as given (undefined is "", every id). It must be a string that
 * UTF-8 can encode, as an id must (docs/STORAGE.md, S3): a lone surrogate, which no id
 * can hold, is refused rather than matched against ids that begin with its pair.
 */
export function checkPrefix(prefix: unknown): string {
  if (prefix === undefined) return '';
  if (typeof prefix !== 'string') {
    throw new InvalidArgumentError(`a replay's prefix must be a string, got ${typeof prefix}`);
  }
  if (!prefix.isWellFormed()) {
    throw new InvalidIdError(
      'GOSSIP_ERR_ID_NOT_UTF8',
      "a replay's prefix holds a lone surrogate: not encodable as UTF-8",
    );
  }
  return prefix;
}

/**
 * The made-up log `warmReplay` replays, and how many times: V8 compiles a function once
 * it has been called often enough and run long enough, so many calls over a small
 * window cost less interpreted work than a few over a large one.
 */
const WARM_RECORDS = 16;
const WARM_ROUNDS = 96;
const WARM_DATA_BYTES = 32;

/**
 * Runs the replay's per-record work over a small made-up log held in memory: the
 * index's plan and cut, then `checkWindow` (lengths, crc, planned ts) and
 * `windowMessages`, as a replay runs them, so that V8 compiles those loops to machine
 * code in the background before a process's first replay, rather than run that replay
 * in its interpreter at several times the cost (what the WebAssembly kernel of earlier
 * versions was for). The same code paths matter: V8's compiled code assumes the objects
 * it has seen (a plan made elsewhere would throw it away). The store calls it at open:
 * a few milliseconds the first time in a process, under one once the code is compiled.
 * Returns how many of its records the last check kept (all of them); `bad` hears of any
 * it found damaged (none).
 */
export function warmReplay(bad: (w: ReplayWindow, k: number) => void = noop): number {
  const index = new IndexTable();
  const replaced = { seg: 0, size: 0 };
  const data = Buffer.alloc(WARM_DATA_BYTES, 0x5a);
  const records = Buffer.allocUnsafe(WARM_RECORDS * (RECORD_OVERHEAD_BYTES + 16 + WARM_DATA_BYTES));
  const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
  let end = 0;
  for (let k = 0; k < WARM_RECORDS; k++) {
    const id = `warm-${k}`;
    const ts = BigInt(k + 1);
    const next = writeRecord(records, view, end, ts, id, id.length, data, true);
    index.load(id, ts, 1, end, next - end, false, replaced);
    end = next;
  }
  // Half the capacity it needs: the first cut grows it, as a replay's may.
  const w = new ReplayWindow(WARM_RECORDS / 2);
  for (let round = 0; round < WARM_ROUNDS; round++) {
    // Every other round by a prefix that all of them share: both ways to plan get compiled.
    const plan = index.plan(null, round % 2 === 0 ? '' : 'warm-');
    index.cut(plan, 0, end, w);
    // As the read of one stretch of a segment leaves a window: item k at its offset in one buffer.
    for (let k = 0; k < w.count; k++) {
      w.buf[k] = 0;
      w.at[k] = w.off[k] as number;
    }
    w.addBuffer(records);
    index.recheck(plan, w);
    checkWindow(w, plan, bad);
    if (round % 8 === 0) windowMessages(w);
  }
  return w.count;
}
