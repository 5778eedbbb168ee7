import type { TsKeys } from './sort.js';

/**
 * The order of a replay, fixed when it starts: the matching ids' slots sorted by ts,
 * each with its ts at that moment (as `TsKeys` words). A record is replayed only if
 * its id still holds that ts when its window is cut, and the record read says so too.
 */
export interface ReplayPlan extends TsKeys {
  n: number;
  /** The index's change count when planned: while it holds, every planned id still has its planned ts. */
  changes: number;
}

/**
 * One window of a replay, as parallel arrays: item k is plan position `pos[k]`, whose
 * record is `size[k]` bytes at `off[k]` of segment (handle) `seg[k]`. Once read, the
 * record is in `bufs[buf[k]]` (viewed by `views[buf[k]]`) from `at[k]`. Reused from
 * window to window: no object per record.
 */
export class ReplayWindow {
  count = 0;
  /** The items' sizes added up at the cut. */
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
}
