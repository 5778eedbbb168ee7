/*
 * The replay's window: what a batch of records is, and the checks each record of it
 * passes (docs/STORAGE.md, S2, S10), shared by the replayer and the index's plan and cut.
 */
import { RECORD, RECORD_OVERHEAD_BYTES, readRecord, recordCrc, validLengths } from './format.js';
import type { TsKeys } from './sort.js';

/** A persisted message. `data` is a view: of a buffer of its own from `get`, of a batch's read buffer from `replay`. */
export interface StoredMessage {
  id: string;
  ts: bigint;
  data: Buffer;
}

/**
 * A batch of `Store.replayRecords`: `count` records, in ts order, each checked (its
 * lengths and crc, docs/STORAGE.md, S2) and still the newest of its id. Record k is
 * `size[k]` bytes at `at[k]` of `bufs[buf[k]]`, byte for byte as on disk: crc,
 * bodyLen, then a body that is a message frame's body (S10). Only the first `count`
 * entries of `buf`, `at` and `size` are the batch's, and only until the next batch is
 * asked for. The buffers are the batch's own reads, which nothing else reads once the
 * batch is handed out: a consumer may keep them, or rewrite them in place.
 */
export interface RecordBatch {
  readonly count: number;
  /** The records' sizes added up. */
  readonly bytes: number;
  readonly bufs: readonly Buffer[];
  readonly buf: Uint32Array;
  readonly at: Uint32Array;
  readonly size: Uint32Array;
}

export interface ReplayOptions {
  /** Bytes of records read per batch, about. Default 1 MiB. */
  batchBytes?: number;
  signal?: AbortSignal;
  /**
   * Only ids that start with this string (compared as JavaScript strings compare:
   * UTF-16 code units). Default "": every id. The replay then visits only those ids
   * in the index, not every id.
   */
  prefix?: string;
}

/**
 * The order of a replay, fixed when it starts: the matching ids' slots sorted by ts,
 * each with its ts at that moment (as `TsKeys` words). A record is replayed only if
 * its id still holds that ts when its window is cut, and the record read says so too.
 */
export interface ReplayPlan extends TsKeys {
  n: number;
  /** The index's change count when planned: while it holds, every planned id still has its planned ts. */
  changes: number;
  /** The index's count of dropped records when planned: while it holds, no planned slot passed to another id. */
  drops: number;
  /** Only ids that start with it ("": every id). */
  prefix: string;
  /** Index entries the plan looked at: every slot without a prefix; with one, about its ids and a binary search. */
  visited: number;
}

/**
 * One window of a replay, as parallel arrays: item k is plan position `pos[k]`, whose
 * record is `size[k]` bytes at `off[k]` of segment (handle) `seg[k]`. Once read, the
 * record is in `bufs[buf[k]]` (viewed by `views[buf[k]]`) from `at[k]`. Reused from
 * window to window: no object per record. Once checked (`checkWindow`), the items left
 * are a `RecordBatch`.
 */
export class ReplayWindow implements RecordBatch {
  count = 0;
  /** The items' sizes added up. */
  bytes = 0;
  pos: Uint32Array;
  seg: Uint32Array;
  off: Uint32Array;
  size: Uint32Array;
  buf: Uint32Array;
  at: Uint32Array;
  bufs: Buffer[] = [];
  views: DataView[] = [];
  /** Items in file order: each buffer holds its items in order, the first at offset 0. */
  inOrder = true;
  /** The index's change count when cut. */
  changes = 0;

  constructor(capacity: number) {
    const c = Math.max(16, capacity);
    this.pos = new Uint32Array(c);
    this.seg = new Uint32Array(c);
    this.off = new Uint32Array(c);
    this.size = new Uint32Array(c);
    this.buf = new Uint32Array(c);
    this.at = new Uint32Array(c);
  }

  get capacity(): number {
    return this.pos.length;
  }

  /** Empties the window for the next cut. */
  reset(): void {
    this.count = 0;
    this.bytes = 0;
    this.bufs = [];
    this.views = [];
    this.inOrder = true;
  }

  /** Doubles the capacity, keeping the items. */
  grow(): void {
    const c = this.pos.length * 2;
    const more = (a: Uint32Array) => {
      const b = new Uint32Array(c);
      b.set(a);
      return b;
    };
    this.pos = more(this.pos);
    this.seg = more(this.seg);
    this.off = more(this.off);
    this.size = more(this.size);
    this.buf = more(this.buf);
    this.at = more(this.at);
  }

  /** Adds a buffer for records read from a file; returns its number. */
  addBuffer(buf: Buffer): number {
    this.bufs.push(buf);
    this.views.push(new DataView(buf.buffer, buf.byteOffset, buf.byteLength));
    return this.bufs.length - 1;
  }
}

/** Flips a ts's high word's sign bit, so that unsigned order is the ts's signed order (`TsKeys`). */
const SIGN = 0x80000000;

/**
 * Checks each item of window `w` as read: a valid record (S2: its lengths, then its
 * crc) that still holds the ts `plan` has for it. Those that pass are moved, in window
 * order, to the front of the arrays, and `count` and `bytes` become theirs; `bad(k)` is
 * called for an item whose record fails its checks (k: its place before the move).
 * The per-record work of every replay: plain loops over the window's arrays, no object
 * per record; `warmReplay` runs it at open so that it is compiled before the first replay.
 */
export function checkWindow(w: ReplayWindow, plan: ReplayPlan, bad: (w: ReplayWindow, k: number) => void): void {
  const n = w.count;
  const { pos, seg, off, size, buf, at, bufs, views } = w;
  const { lo, hi } = plan;
  let m = 0;
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const z = size[k] as number;
    if (z === 0) continue; // left out: updated since its cut, or its segment is gone
    const b = buf[k] as number;
    const a = at[k] as number;
    const view = views[b] as DataView;
    const bodyLen = z < RECORD_OVERHEAD_BYTES + 1 ? -1 : view.getUint32(a + RECORD.bodyLen);
    if (
      bodyLen < 0 ||
      !validLengths(bodyLen, view.getUint16(a + RECORD.idLen), z) ||
      recordCrc(bufs[b] as Buffer, a, bodyLen) !== view.getUint32(a + RECORD.crc)
    ) {
      bad(w, k);
      continue;
    }
    const i = pos[k] as number;
    // The ts as the plan's two words: its high word (sign flipped) and its low word.
    if ((view.getUint32(a + RECORD.ts) ^ SIGN) >>> 0 !== hi[i] || view.getUint32(a + RECORD.ts + 4) !== lo[i]) {
      continue; // not the record planned: its id moved on
    }
    pos[m] = i;
    seg[m] = seg[k] as number;
    off[m] = off[k] as number;
    size[m] = z;
    buf[m] = b;
    at[m] = a;
    bytes += z;
    m++;
  }
  w.count = m;
  w.bytes = bytes;
}

/** A checked window's records decoded: id strings, bigint ts, and data as views of the read buffers. */
export function windowMessages(w: ReplayWindow): StoredMessage[] {
  const out = new Array<StoredMessage>(w.count);
  for (let k = 0; k < w.count; k++) {
    const b = w.buf[k] as number;
    out[k] = readRecord(w.bufs[b] as Buffer, w.views[b] as DataView, w.at[k] as number, w.size[k] as number);
  }
  return out;
}

/** A replay reads across a gap of dead records up to this size rather than pay for another read. */
