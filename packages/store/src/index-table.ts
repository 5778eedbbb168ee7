/**
 * The in-memory index: id → newest ts and where its record lives. Payloads stay on
 * disk, so memory grows with the number of ids, not with bytes: a Map from id to a
 * slot number, and each slot's fields in typed arrays (docs/STORAGE.md, "Index").
 *
 * A slot also carries the appends of its id that are queued but not yet written
 * ("pending"): the newest-ts check sees them, readers do not. A slot whose id has
 * pending appends but no written record is invisible to readers.
 *
 * Beside the slots, the ids in id order (id-order.ts), kept as ids take and leave
 * slots, so that a replay of a prefix visits only the ids under it.
 */
import { endianness } from 'node:os';
import { MAX_TS, MIN_TS } from '@gossip/protocol';
import { IdOrder } from './id-order.js';
import type { ReplayPlan, ReplayWindow } from './replay-window.js';
import { sortByTs } from './sort.js';

/** Where a ts's low and high 32-bit words sit in a BigInt64Array's memory. */
const LO = endianness() === 'LE' ? 0 : 1;
const HI = 1 - LO;
const SIGN = 0x80000000;

const FREE = 0;
/** Only pending appends: no written record yet. */
const PENDING = 1;
const COMMITTED = 2;

export class IndexTable {
  /** Id → slot; after a restore, only once `fillSlots` is done (`#unmapped`). */
  readonly #slots = new Map<string, number>();
  /**
   * The slots a restore filled and has not put in `#slots` yet: `order[next…]`, in id
   * order (so their strings are read in the order they were made). While it is set, a
   * lookup that `#slots` misses asks the id order.
   */
  #unmapped: { order: Uint32Array; next: number } | undefined;
  #ids: (string | undefined)[] = [];
  /** Every slot that has an id (written or pending), in id order. */
  readonly #order = new IdOrder(this.#ids);
  /** Whether `#order` is kept as ids come and go: not while a scan loads the index (`loadMany`). */
  #ordered = true;
  #state = new Uint8Array(1024);
  #tomb = new Uint8Array(1024);
  #ts = new BigInt64Array(1024);
  #seg = new Uint32Array(1024);
  #off = new Uint32Array(1024);
  #size = new Uint32Array(1024);
  /** Newest pending ts, meaningful while `#pendCount` is non-zero. */
  #pendTs = new BigInt64Array(1024);
  #pendCount = new Uint32Array(1024);
  #free: number[] = [];
  #used = 0;
  /** Counts the changes to written records (new ts, dropped): a replay checks its ids again only after one. */
  #changes = 0;
  /** Counts the written records dropped: a slot may then pass to another id, which a prefix's replay checks for. */
  #drops = 0;
  #committed = 0;
  #tombstones = 0;
  #liveBytes = 0;
  #newestTs: bigint | null = null;

  /** Ids with a written record, tombstones included. */
  get count(): number {
    return this.#committed;
  }

  get tombstones(): number {
    return this.#tombstones;
  }

  /** Sum of the sizes of the records the index points to. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Newest ts of any record the index took (written, loaded or restored), or null while it took none. */
  get newestTs(): bigint | null {
    return this.#newestTs;
  }

  /** The slot of an id with a written record, for readers. */
  slotOf(id: string): number | undefined {
    const slot = this.#slotFor(id);
    return slot !== undefined && this.#state[slot] === COMMITTED ? slot : undefined;
  }

  ts(slot: number): bigint {
    return this.#ts[slot] as bigint;
  }

  segment(slot: number): number {
    return this.#seg[slot] as number;
  }

  offset(slot: number): number {
    return this.#off[slot] as number;
  }

  size(slot: number): number {
    return this.#size[slot] as number;
  }

  /**
   * The newest-ts check and the pending mark in one step (docs/STORAGE.md, rule S3):
   * returns the id's slot if `ts` is newer than every written and pending ts of `id`,
   * marking the append pending; returns -1 (stale) otherwise.
   */
  tryPend(id: string, ts: bigint): number {
    let slot = this.#slotFor(id);
    if (slot === undefined) {
      slot = this.#claim(id);
    } else if (this.#pendCount[slot] !== 0) {
      if (ts <= (this.#pendTs[slot] as bigint)) return -1;
    } else if (this.#state[slot] === COMMITTED && ts <= (this.#ts[slot] as bigint)) {
      return -1;
    }
    this.#pendTs[slot] = ts;
    this.#pendCount[slot] = (this.#pendCount[slot] as number) + 1;
    return slot;
  }

  /**
   * A pending append was written: points the slot at it unless a newer record is
   * already there, and says whether it did. The record it replaced (now dead) comes
   * back through `replaced`.
   */
  commit(slot: number, ts: bigint, seg: number, off: number, size: number, tomb: boolean, replaced: Replaced): boolean {
    this.#unpendOne(slot);
    return this.#apply(slot, ts, seg, off, size, tomb, replaced);
  }

  /** A pending append failed: forgets it; an id left with nothing is dropped. */
  unpend(slot: number): void {
    const n = this.#unpendOne(slot);
    if (n === 0 && this.#state[slot] === PENDING) this.#release(slot);
  }

  /** One pending append of `slot` is over (written or failed); returns how many are left. */
  #unpendOne(slot: number): number {
    const n = (this.#pendCount[slot] as number) - 1;
    // A count that would wrap round: settled twice, or never pended. A bug: said at once.
    if (n < 0) throw new Error(`IndexTable: slot ${slot} has no pending append`);
    this.#pendCount[slot] = n;
    return n;
  }

  /** Recovery: points `id` at a record read from disk if it is newer than what the index has. */
  load(id: string, ts: bigint, seg: number, off: number, size: number, tomb: boolean, replaced: Replaced): boolean {
    const slot = this.#slotFor(id) ?? this.#claim(id);
    return this.#apply(slot, ts, seg, off, size, tomb, replaced);
  }

  /**
   * The ids with a written record and their fields, column by column, in slot order
   * (for the checkpoint), and the same ids in id order (`sorted`, `order`). `seg` holds
   * segment handles. Each ts is copied as two 32-bit words: no BigInt is made per id.
   */
  columns(): IndexColumns {
    if (!this.#ordered) throw new Error('IndexTable: the id order is being rebuilt');
    const n = this.#committed;
    const c: IndexColumns = {
      ids: new Array<string>(n),
      seg: new Uint32Array(n),
      off: new Uint32Array(n),
      size: new Uint32Array(n),
      ts: new BigInt64Array(n),
      tomb: new Uint8Array(n),
      order: new Uint32Array(n),
      sorted: new Array<string>(n),
    };
    const fromWords = new Uint32Array(this.#ts.buffer, 0, this.#ts.length * 2);
    const toWords = new Uint32Array(c.ts.buffer);
    // Slot → its entry, for the order; -1 for a slot with no written record.
    const entry = new Int32Array(this.#used).fill(-1);
    let k = 0;
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.#state[slot] !== COMMITTED) continue;
      entry[slot] = k;
      c.ids[k] = this.#ids[slot] as string;
      c.seg[k] = this.#seg[slot] as number;
      c.off[k] = this.#off[slot] as number;
      c.size[k] = this.#size[slot] as number;
      toWords[2 * k] = fromWords[2 * slot] as number;
      toWords[2 * k + 1] = fromWords[2 * slot + 1] as number;
      c.tomb[k] = this.#tomb[slot] as number;
      k++;
    }
    const slots = this.#order.all();
    const order = c.order as Uint32Array;
    const sorted = c.sorted as string[];
    let j = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as number;
      const e = entry[slot] as number;
      if (e < 0) continue;
      order[j] = e;
      sorted[j++] = this.#ids[slot] as string;
    }
    return c;
  }

  /**
   * Fills an empty index with `c` as it is (from the checkpoint, with the newest ts it
   * recorded): entry k takes slot k. The id order comes from `c.sorted` and `c.order`
   * (`sorted[j]` must be `ids[order[j]]`, as `decodeCheckpoint` makes them), checked as
   * it is taken (one comparison per id), or from one sort when there is none (a version
   * 1 checkpoint) or it does not hold. The ids are visited in the order their strings
   * were made in (id order, from a version 2 checkpoint), so that each pass over them
   * reads memory in order. Returns 'ordered' or 'sorted' as the order came; or 'an id
   * repeats', leaving the index empty. The index takes `c.ids` as its own: the caller
   * hands `c` over.
   *
   * With the order taken as it came (strictly ascending, so no id repeats), the `Map`
   * from id to slot is not filled here: at about half a microsecond an id it is most of
   * a restore. Until `fillSlots` has put every id in it, a lookup it misses finds the id
   * in the id order instead (two binary searches), so the index answers at once.
   */
  restore(c: IndexColumns, newestTs: bigint | null): 'ordered' | 'sorted' | 'an id repeats' {
    const n = c.ids.length;
    if (this.#used !== 0) throw new Error('IndexTable.restore needs an empty index');
    let cap = this.#ts.length;
    while (cap < n) cap *= 2;
    const fresh = () => {
      this.#state = new Uint8Array(cap);
      this.#tomb = new Uint8Array(cap);
      this.#ts = new BigInt64Array(cap);
      this.#seg = new Uint32Array(cap);
      this.#off = new Uint32Array(cap);
      this.#size = new Uint32Array(cap);
      this.#pendTs = new BigInt64Array(cap);
      this.#pendCount = new Uint32Array(cap);
    };
    fresh();
    const { sorted, order } = c;
    // Taken, not copied: the caller hands `c` over.
    this.#ids = c.ids;
    this.#order.ids = this.#ids;
    const ordered =
      sorted !== null &&
      order !== null &&
      sorted.length === n &&
      order.length === n &&
      this.#order.build(sorted, order);
    if (ordered) {
      if (n > 0) this.#unmapped = { order, next: 0 };
    } else {
      const slots = this.#slots;
      for (let k = 0; k < n; k++) slots.set(c.ids[k] as string, k);
      if (slots.size !== n) {
        slots.clear();
        this.#ids = [];
        this.#order.ids = this.#ids;
        fresh();
        return 'an id repeats';
      }
    }
    this.#state.fill(COMMITTED, 0, n);
    this.#tomb.set(c.tomb);
    this.#ts.set(c.ts);
    this.#seg.set(c.seg);
    this.#off.set(c.off);
    this.#size.set(c.size);
    let live = 0;
    let tombs = 0;
    for (let k = 0; k < n; k++) {
      live += c.size[k] as number;
      tombs += c.tomb[k] as number;
    }
    this.#used = n;
    this.#committed = n;
    this.#tombstones = tombs;
    this.#liveBytes = live;
    this.#newestTs = newestTs;
    this.#ordered = true;
    if (ordered) return 'ordered';
    this.sortOrder();
    return 'sorted';
  }

  /**
   * Puts the ids of up to `count` more of the slots a restore filled into the `Map` from
   * id to slot, as the slots hold them now (a slot freed since holds none; one taken by
   * a new id since put it in the map already, and setting it again changes nothing);
   * returns true once they are all in, and lookups no longer need the id order. The
   * store calls it a stretch at a time after a restore, between other work.
   */
  fillSlots(count: number): boolean {
    const unmapped = this.#unmapped;
    if (unmapped === undefined) return true;
    const { order } = unmapped;
    const end = Math.min(unmapped.next + count, order.length);
    const ids = this.#ids;
    const slots = this.#slots;
    for (let j = unmapped.next; j < end; j++) {
      const slot = order[j] as number;
      const id = ids[slot];
      if (id !== undefined) slots.set(id, slot);
    }
    unmapped.next = end;
    if (end < order.length) return false;
    this.#unmapped = undefined;
    return true;
  }

  /** The slot of `id` (written or pending), if it has one. */
  #slotFor(id: string): number | undefined {
    const slot = this.#slots.get(id);
    if (slot !== undefined || this.#unmapped === undefined) return slot;
    return this.#order.find(id);
  }

  /**
   * Stops keeping the id order while a scan loads the index (`load`, id after id): one
   * sort at the end (`sortOrder`) costs less than an insert per id. Plans by prefix
   * and `columns` refuse until then.
   */
  deferOrder(): void {
    // Lookups of a restored index may still need the order: the Map takes over first.
    this.fillSlots(Number.POSITIVE_INFINITY);
    this.#ordered = false;
    this.#order.clear();
  }

  /** Builds the id order with one sort (after `deferOrder`, or a restore without one) and keeps it from then on. */
  sortOrder(): void {
    this.fillSlots(Number.POSITIVE_INFINITY);
    const slots = new Uint32Array(this.#slots.size);
    let n = 0;
    for (let slot = 0; slot < this.#used; slot++) if (this.#state[slot] !== FREE) slots[n++] = slot;
    this.#order.sort(slots.subarray(0, n));
    this.#ordered = true;
  }

  /**
   * What is wrong with the id order, or undefined: it must hold exactly the slots that
   * have an id, in id order (id-order.ts, `problem`). For tests.
   */
  orderProblem(): string | undefined {
    if (!this.#ordered) return undefined;
    this.fillSlots(Number.POSITIVE_INFINITY);
    const problem = this.#order.problem();
    if (problem !== undefined) return problem;
    const slots = this.#order.all();
    if (slots.length !== this.#slots.size) {
      return `the order holds ${slots.length} slots, the index ${this.#slots.size} ids`;
    }
    for (const slot of slots) {
      const id = this.#ids[slot];
      if (this.#state[slot] === FREE || id === undefined || this.#slots.get(id) !== slot) {
        return `slot ${slot} is in the order but not the slot of ${JSON.stringify(id)}`;
      }
    }
    return undefined;
  }

  /** The newest ts of a written record, or null: compared as words, no BigInt per slot. */
  newest(): bigint | null {
    const hiWords = new Int32Array(this.#ts.buffer, 0, this.#used * 2);
    const loWords = new Uint32Array(this.#ts.buffer, 0, this.#used * 2);
    const state = this.#state;
    let best = -1;
    let bestHi = 0;
    let bestLo = 0;
    for (let slot = 0; slot < this.#used; slot++) {
      if (state[slot] !== COMMITTED) continue;
      const h = hiWords[2 * slot + HI] as number;
      const l = loWords[2 * slot + LO] as number;
      if (best < 0 || h > bestHi || (h === bestHi && l > bestLo)) {
        best = slot;
        bestHi = h;
        bestLo = l;
      }
    }
    return best < 0 ? null : (this.#ts[best] as bigint);
  }

  /**
   * A replay's plan: the slots with a written record whose ts is >= `since` (all for
   * null) and whose id starts with `prefix` (all for ""), sorted by ts. Without a
   * prefix, one pass over the typed arrays; with one, only the prefix's stretch of the
   * id order; then a radix sort, unless the slots came in ts order already.
   */
  plan(since: bigint | null, prefix = ''): ReplayPlan {
    if (prefix === '') return this.#fill(this.#newPlan(this.#committed, '', this.#used), since, null, this.#used);
    if (!this.#ordered) throw new Error('IndexTable: the id order is being rebuilt');
    const range = this.#order.range(prefix);
    const k = range.slots.length;
    return this.#fill(this.#newPlan(k, prefix, range.seen), since, range.slots, k);
  }

  /**
   * Fills plan `p` with the slots among the first `count` of `from` (or of every slot,
   * for null) that have a written record with a ts >= `since`, sorted by ts.
   */
  #fill(p: ReplayPlan, since: bigint | null, from: Uint32Array | null, count: number): ReplayPlan {
    // A since below the 64-bit range takes every ts, one above it none.
    if (since !== null && since > MAX_TS) return p;
    const all = since === null || since <= MIN_TS;
    const sHi = all ? 0 : (Number((since >> 32n) & 0xffffffffn) ^ SIGN) >>> 0;
    const sLo = all ? 0 : Number(since & 0xffffffffn);
    const words = new Uint32Array(this.#ts.buffer, 0, this.#used * 2);
    const state = this.#state;
    const { slots, lo, hi } = p;
    let n = 0;
    // Ids updated in turn leave their slots in ts order already: then nothing to sort.
    let sorted = true;
    let pHi = 0;
    let pLo = 0;
    for (let j = 0; j < count; j++) {
      const slot = from === null ? j : (from[j] as number);
      if (state[slot] !== COMMITTED) continue;
      const h = ((words[2 * slot + HI] as number) ^ SIGN) >>> 0;
      const l = words[2 * slot + LO] as number;
      if (!all && (h < sHi || (h === sHi && l < sLo))) continue;
      if (h < pHi || (h === pHi && l < pLo)) sorted = false;
      pHi = h;
      pLo = l;
      slots[n] = slot;
      lo[n] = l;
      hi[n] = h;
      n++;
    }
    p.n = n;
    if (!sorted) sortByTs(p, n);
    return p;
  }

  /** An empty plan with room for `size` slots: one object shape for every plan (V8 compiles the cut for it). */
  #newPlan(size: number, prefix: string, visited: number): ReplayPlan {
    return {
      n: 0,
      changes: this.#changes,
      drops: this.#drops,
      prefix,
      visited,
      slots: new Uint32Array(size),
      lo: new Uint32Array(size),
      hi: new Uint32Array(size),
    };
  }

  /**
   * Cuts a replay's next window, from plan position `from`, up to `maxBytes` of
   * records: the positions whose id still holds its planned ts, with where the record
   * lies, taken in this one synchronous step. Returns the position after the window.
   */
  cut(p: ReplayPlan, from: number, maxBytes: number, w: ReplayWindow): number {
    w.reset();
    w.changes = this.#changes;
    const check = p.changes !== this.#changes;
    // A slot dropped since the plan may hold another id now, maybe not under the prefix.
    const strict = p.prefix !== '' && p.drops !== this.#drops;
    const words = new Uint32Array(this.#ts.buffer, 0, this.#used * 2);
    const state = this.#state;
    const segs = this.#seg;
    const offs = this.#off;
    const sizes = this.#size;
    const { slots, lo, hi, n } = p;
    let m = 0;
    let bytes = 0;
    let i = from;
    for (; i < n && bytes < maxBytes; i++) {
      const slot = slots[i] as number;
      if (check && !holds(state, words, slot, lo[i] as number, hi[i] as number)) continue;
      if (strict && !this.#under(slot, p.prefix)) continue;
      if (m === w.capacity) w.grow();
      const size = sizes[slot] as number;
      w.pos[m] = i;
      w.seg[m] = segs[slot] as number;
      w.off[m] = offs[slot] as number;
      w.size[m] = size;
      bytes += size;
      m++;
    }
    w.count = m;
    w.bytes = bytes;
    return i;
  }

  /**
   * Leaves out (size 0) the items of a window cut earlier whose id no longer holds its
   * planned ts: updated (or dropped) since the cut. The record read for an item is the
   * one its slot pointed to at the cut, with the planned ts; a slot freed and taken by
   * another id with that same ts since would pass, and that id's record is then its
   * current one, so nothing stale is ever sent; under a prefix, it passes only if that
   * id is under the prefix too.
   */
  recheck(p: ReplayPlan, w: ReplayWindow): void {
    if (w.changes === this.#changes) return;
    const strict = p.prefix !== '' && p.drops !== this.#drops;
    const words = new Uint32Array(this.#ts.buffer, 0, this.#used * 2);
    const state = this.#state;
    const { slots, lo, hi } = p;
    for (let k = 0; k < w.count; k++) {
      const i = w.pos[k] as number;
      const slot = slots[i] as number;
      if (!holds(state, words, slot, lo[i] as number, hi[i] as number)) w.size[k] = 0;
      else if (strict && !this.#under(slot, p.prefix)) w.size[k] = 0;
    }
  }

  /** Whether `slot` holds an id that starts with `prefix`. */
  #under(slot: number, prefix: string): boolean {
    const id = this.#ids[slot];
    return id?.startsWith(prefix) === true;
  }

  /** A slot for a new id, with nothing written yet. */
  #claim(id: string): number {
    const slot = this.#free.pop() ?? this.#grow();
    this.#slots.set(id, slot);
    this.#ids[slot] = id;
    this.#state[slot] = PENDING;
    if (this.#ordered) this.#order.insert(slot);
    return slot;
  }

  #apply(slot: number, ts: bigint, seg: number, off: number, size: number, tomb: boolean, replaced: Replaced): boolean {
    if (this.#state[slot] === COMMITTED) {
      if ((this.#ts[slot] as bigint) >= ts) return false;
      this.#changes++;
      replaced.seg = this.#seg[slot] as number;
      replaced.size = this.#size[slot] as number;
      this.#liveBytes -= replaced.size;
      if (this.#tomb[slot] === 1) this.#tombstones--;
    } else {
      replaced.seg = 0;
      replaced.size = 0;
      this.#state[slot] = COMMITTED;
      this.#committed++;
    }
    this.#ts[slot] = ts;
    this.#seg[slot] = seg;
    this.#off[slot] = off;
    this.#size[slot] = size;
    this.#tomb[slot] = tomb ? 1 : 0;
    this.#liveBytes += size;
    if (tomb) this.#tombstones++;
    if (this.#newestTs === null || ts > this.#newestTs) this.#newestTs = ts;
    return true;
  }

  /** Moves an id's record (compaction) if the id still points at `fromSeg/fromOff`. */
  move(slot: number, fromSeg: number, fromOff: number, toSeg: number, toOff: number): boolean {
    if (this.#state[slot] !== COMMITTED || this.#seg[slot] !== fromSeg || this.#off[slot] !== fromOff) return false;
    this.#seg[slot] = toSeg;
    this.#off[slot] = toOff;
    return true;
  }

  /** Drops an id's written record (a tombstone past retention) if it still points at `seg/off`. */
  drop(id: string, seg: number, off: number): boolean {
    const slot = this.#slotFor(id);
    if (slot === undefined || this.#state[slot] !== COMMITTED || this.#seg[slot] !== seg || this.#off[slot] !== off) {
      return false;
    }
    this.#changes++;
    this.#drops++;
    this.#liveBytes -= this.#size[slot] as number;
    if (this.#tomb[slot] === 1) this.#tombstones--;
    this.#committed--;
    if (this.#pendCount[slot] !== 0) this.#state[slot] = PENDING;
    else this.#release(slot);
    return true;
  }

  #release(slot: number): void {
    if (this.#ordered) this.#order.remove(slot);
    this.#slots.delete(this.#ids[slot] as string);
    this.#ids[slot] = undefined;
    this.#state[slot] = FREE;
    this.#free.push(slot);
  }

  #grow(): number {
    if (this.#used === this.#ts.length) {
      const n = this.#ts.length * 2;
      this.#state = grow(this.#state, new Uint8Array(n));
      this.#tomb = grow(this.#tomb, new Uint8Array(n));
      this.#ts = grow(this.#ts, new BigInt64Array(n));
      this.#seg = grow(this.#seg, new Uint32Array(n));
      this.#off = grow(this.#off, new Uint32Array(n));
      this.#size = grow(this.#size, new Uint32Array(n));
      this.#pendTs = grow(this.#pendTs, new BigInt64Array(n));
      this.#pendCount = grow(this.#pendCount, new Uint32Array(n));
    }
    return this.#used++;
  }
}

/**
 * Index entries column by column: entry k is `ids[k]`, in segment (handle) `seg[k]`.
 * The same ids in id order, when known (not from a version 1 checkpoint): `sorted[j]`
 * is the j-th id, that of entry `order[j]`.
 */
export interface IndexColumns {
  ids: string[];
  seg: Uint32Array;
  off: Uint32Array;
  size: Uint32Array;
  ts: BigInt64Array;
  /** 1 for a tombstone, else 0. */
  tomb: Uint8Array;
  order: Uint32Array | null;
  sorted: string[] | null;
}

/** Out-parameter of `commit` and `load`: the record an applied one replaced (seg 0 if none). */
export interface Replaced {
  seg: number;
  size: number;
}

/** Whether `slot` has a written record with the ts `lo`/`hi` (the plan's words; `words` views the ts array). */
function holds(state: Uint8Array, words: Uint32Array, slot: number, lo: number, hi: number): boolean {
  return (
    state[slot] === COMMITTED && words[2 * slot + LO] === lo && ((words[2 * slot + HI] as number) ^ SIGN) >>> 0 === hi
  );
}

function grow<T extends Uint8Array | Uint32Array | BigInt64Array>(from: T, to: T): T {
  to.set(from as never);
  return to;
}
