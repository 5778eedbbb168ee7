/**
 * The index's slots in id order, kept as ids come and go, so that a replay of a prefix
 * finds its ids without looking at the others (docs/STORAGE.md, "Index"). The order is
 * JavaScript's string order (UTF-16 code units): every id that starts with a given
 * string lies in one contiguous stretch of it.
 *
 * A list of sorted chunks, as Python's sortedcontainers keeps one: each chunk holds up
 * to `CHUNK` slots, with its count and its last id. An insert or a removal finds its
 * chunk by a binary search over the last ids, its place by one within the chunk, and
 * moves at most a chunk's worth of entries; a full chunk splits in two.
 *
 * The searches compare **keys** rather than ids: ids live all over the heap, and
 * reading one is a cache miss, which made a search among random ids cost several
 * microseconds. An entry's key is four code units of its id, from its chunk's `depth`
 * on, as one 32-bit number (`keyAt`). Every id a chunk can hold lies between the last id
 * before the chunk and its own last id, so shares their common prefix; a depth within
 * that prefix makes the keys ordered as the ids are, and an id is read only when two
 * keys tie. The last ids carry keys too, from the prefix they all share.
 *
 * Memory: 8 bytes per slot (slot and key) in chunks that are half to all full, in pages
 * of `PAGE_BLOCKS` chunks, so a search reaches a chunk's words through one page object
 * that stays in cache rather than a typed array per chunk; no object per id.
 */

/** Slots per chunk: a move costs at most 4 KiB, and a split copies 2. */
export const CHUNK = 512;
/** Words of a chunk: `CHUNK` entries of two words, slot and key. */
const BLOCK = 2 * CHUNK;
/** Chunks per page of memory: 64 × 4 KiB. */
const PAGE_SHIFT = 6;
const PAGE_BLOCKS = 1 << PAGE_SHIFT;
/** A chunk left with fewer slots than this after a removal joins a neighbour with room. */
const SPARSE = CHUNK / 4;
/** Searches of a chunk that had to read ids (keys tied) before its keys are made again from deeper in its ids. */
const TIES = 16;

/*
 * Chunk c's words are block `#blocks[c]`: page `block >> PAGE_SHIFT`, from word
 * `(block & (PAGE_BLOCKS - 1)) * BLOCK`. Entry i's slot is word 2i of the block, its key
 * word 2i + 1.
 */

export class IdOrder {
  /** Slot → id: the index's own array (IndexTable's `#ids`), which it hands over again when it replaces it. */
  ids: (string | undefined)[];
  #pages: Uint32Array[] = [];
  /** Blocks of the pages that no chunk uses. */
  #free: number[] = [];
  /** Per chunk, in order: its block, count, last id, depth, and searches that met tied keys. */
  #blocks: number[] = [];
  #counts: number[] = [];
  #lasts: string[] = [];
  #depths: number[] = [];
  #ties: number[] = [];
  /** Each chunk's last id as a key from `#top` on: the search for a chunk compares these. */
  #lastKeys = new Uint32Array(64);
  /** Code units that every last id shares at its start (or fewer): `#topPrefix`'s length. */
  #top = 0;
  #topPrefix = '';
  #size = 0;

  constructor(ids: (string | undefined)[]) {
    this.ids = ids;
  }

  /** Slots in the order. */
  get size(): number {
    return this.#size;
  }

  /** Adds `slot`, whose id (`ids[slot]`) is in no other slot of the order. */
  insert(slot: number): void {
    const id = this.ids[slot] as string;
    const lasts = this.#lasts;
    const last = lasts.length - 1;
    this.#size++;
    if (last < 0 || id > (lasts[last] as string)) {
      // After every id: ids that grow (counters, times) fill chunks at the end, and leave them full.
      if (last >= 0 && (this.#counts[last] as number) < CHUNK) {
        this.#put(last, this.#counts[last] as number, slot, id);
        this.#fit(last);
      } else {
        const c = this.#addChunk(lasts.length, 0);
        this.#put(c, 0, slot, id);
        this.#rekey(c, this.#bounds(c));
      }
      return;
    }
    let c = this.#chunkOf(id);
    let i = this.#place(c, id);
    const n = this.#counts[c] as number;
    if (n === CHUNK) {
      // The right half moves to a new chunk. Both halves lie between the chunk's bounds,
      // so its depth holds for both, and their keys stay as they are.
      const half = CHUNK / 2;
      const right = this.#addChunk(c + 1, this.#depths[c] as number);
      const from = this.#page(c);
      const to = this.#page(right);
      const at = this.#base(c);
      to.set(from.subarray(at + 2 * half, at + 2 * n), this.#base(right));
      this.#counts[right] = n - half;
      this.#counts[c] = half;
      this.#setLast(right, lasts[c] as string);
      this.#setLast(c, this.ids[from[at + 2 * (half - 1)] as number] as string);
      if (i > half) {
        c = right;
        i -= half;
      }
    }
    this.#put(c, i, slot, id);
    // Only the left half of a split takes an id at its end: its bounds moved apart.
    if (i === (this.#counts[c] as number) - 1) this.#fit(c);
  }

  /** The slot whose id is `id`, if the order holds one: a search of the chunks, then of one chunk. */
  find(id: string): number | undefined {
    const c = this.#chunkOf(id);
    if (c >= this.#blocks.length) return undefined;
    const i = this.#place(c, id);
    if (i >= (this.#counts[c] as number)) return undefined;
    const slot = this.#page(c)[this.#base(c) + 2 * i] as number;
    return this.ids[slot] === id ? slot : undefined;
  }

  /** Takes `slot` out; its id (`ids[slot]`) must still be the one it was inserted with. */
  remove(slot: number): void {
    const id = this.ids[slot] as string;
    const c = this.#chunkOf(id);
    const i = c < this.#blocks.length ? this.#place(c, id) : 0;
    const page = c < this.#blocks.length ? this.#page(c) : undefined;
    const at = c < this.#blocks.length ? this.#base(c) : 0;
    if (!page || page[at + 2 * i] !== slot) {
      throw new Error(`IdOrder: slot ${slot} (${JSON.stringify(id)}) is not in the order`);
    }
    const n = (this.#counts[c] as number) - 1;
    page.copyWithin(at + 2 * i, at + 2 * (i + 1), at + 2 * (n + 1));
    this.#counts[c] = n;
    this.#size--;
    if (n === 0) {
      this.#removeChunk(c);
      this.#fit(c);
      return;
    }
    if (i === n) {
      this.#setLast(c, this.ids[page[at + 2 * (n - 1)] as number] as string);
      this.#fit(c + 1);
    }
    if (n < SPARSE) this.#joinSparse(c);
  }

  /** Empties the order. */
  clear(): void {
    this.#pages = [];
    this.#free = [];
    this.#blocks = [];
    this.#counts = [];
    this.#lasts = [];
    this.#depths = [];
    this.#ties = [];
    this.#lastKeys = new Uint32Array(64);
    this.#top = 0;
    this.#topPrefix = '';
    this.#size = 0;
  }

  /**
   * Replaces the order with `sorted`, ids that must be in strictly ascending order, and
   * `slots`, the slot of each (`ids[slots[k]]` is `sorted[k]`, which the caller makes
   * sure of). The order is checked as the ids are taken, one comparison each, in the
   * pass that makes their keys: it reads the strings in the order given, so strings made
   * in id order (a checkpoint's) are read in the order they lie in memory. Returns
   * false, leaving the order empty, if they are not in order.
   */
  build(sorted: readonly string[], slots: Uint32Array): boolean {
    this.clear();
    const n = sorted.length;
    let prev: string | undefined;
    let bound = '';
    for (let k = 0; k < n; k += CHUNK) {
      const m = Math.min(CHUNK, n - k);
      const last = sorted[k + m - 1] as string;
      const depth = commonPrefix(bound, last);
      const c = this.#addChunk(this.#blocks.length, depth);
      const page = this.#page(c);
      const at = this.#base(c);
      for (let j = 0; j < m; j++) {
        const id = sorted[k + j] as string;
        if (prev !== undefined && !(prev < id)) {
          this.clear();
          return false;
        }
        prev = id;
        page[at + 2 * j] = slots[k + j] as number;
        page[at + 2 * j + 1] = keyAt(id, depth);
      }
      this.#counts[c] = m;
      this.#lasts[c] = last;
      bound = last;
    }
    this.#size = n;
    this.#retop();
    return true;
  }

  /**
   * Replaces the order with `slots` (each with an id, no id twice), sorted here: one
   * sort, for an index rebuilt without an order to trust (a scan, an old checkpoint).
   */
  sort(slots: Uint32Array): void {
    const ids = this.ids;
    const order = Array.from(slots);
    order.sort((a, b) => ((ids[a] as string) < (ids[b] as string) ? -1 : 1));
    const sorted = order.map((slot) => ids[slot] as string);
    if (!this.build(sorted, Uint32Array.from(order))) throw new Error('IdOrder: an id repeats');
  }

  /**
   * The slots whose id starts with `prefix`, in id order: a binary search to the first
   * id >= `prefix`, then whole chunks while their last id still starts with it, and a
   * binary search for the end within the chunk where the stretch ends. `seen` is how
   * many entries it looked at: the slots it returns, and at most what its searches compared.
   */
  range(prefix: string): { slots: Uint32Array; seen: number } {
    const ids = this.ids;
    const counts = this.#counts;
    const lasts = this.#lasts;
    const m = this.#blocks.length;
    let seen = Math.ceil(Math.log2(m + 1));
    const c0 = this.#chunkOf(prefix);
    if (c0 === m) return { slots: new Uint32Array(0), seen };
    const i0 = this.#place(c0, prefix);
    seen += Math.ceil(Math.log2((counts[c0] as number) + 1));
    // The stretch ends in chunk c1, before position e1.
    let c1 = c0;
    let e1 = 0;
    let k = 0;
    for (; c1 < m; c1++) {
      const from = c1 === c0 ? i0 : 0;
      const n = counts[c1] as number;
      seen++;
      if ((lasts[c1] as string).startsWith(prefix)) {
        k += n - from;
        continue;
      }
      const page = this.#page(c1);
      const at = this.#base(c1);
      let lo = from;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        seen++;
        if ((ids[page[at + 2 * mid] as number] as string).startsWith(prefix)) lo = mid + 1;
        else hi = mid;
      }
      e1 = lo;
      k += lo - from;
      break;
    }
    const slots = new Uint32Array(k);
    let out = 0;
    for (let c = c0; c <= c1 && c < m; c++) {
      const page = this.#page(c);
      const at = this.#base(c);
      const to = c === c1 ? e1 : (counts[c] as number);
      for (let i = c === c0 ? i0 : 0; i < to; i++) slots[out++] = page[at + 2 * i] as number;
    }
    return { slots, seen: seen + k };
  }

  /** Every slot in id order (for the checkpoint). */
  all(): Uint32Array {
    const out = new Uint32Array(this.#size);
    let k = 0;
    for (let c = 0; c < this.#blocks.length; c++) {
      const page = this.#page(c);
      const at = this.#base(c);
      const n = this.#counts[c] as number;
      for (let i = 0; i < n; i++) out[k++] = page[at + 2 * i] as number;
    }
    return out;
  }

  /**
   * What is wrong with the order, or undefined: every chunk holds 1 to `CHUNK` slots,
   * each with an id, in strictly ascending order across chunks, its last id recorded
   * with its key, a depth within the common prefix of its bounds, every key made at it,
   * no block used twice, and the counts add up. For tests.
   */
  problem(): string | undefined {
    const m = this.#blocks.length;
    for (const list of [this.#counts, this.#lasts, this.#depths, this.#ties]) {
      if (list.length !== m) return 'the chunk lists differ in length';
    }
    const used = new Set([...this.#blocks, ...this.#free]);
    if (used.size !== m + this.#free.length || used.size > this.#pages.length * PAGE_BLOCKS) {
      return 'a block is used twice, or is past the pages';
    }
    let prev: string | undefined;
    let total = 0;
    for (let c = 0; c < m; c++) {
      const page = this.#page(c);
      const base = this.#base(c);
      const n = this.#counts[c] as number;
      const depth = this.#depths[c] as number;
      if (n < 1 || n > CHUNK) return `chunk ${c} holds ${n} slots`;
      const bound = c === 0 ? '' : (this.#lasts[c - 1] as string);
      if (depth < 0 || depth > commonPrefix(bound, this.#lasts[c] as string)) {
        return `chunk ${c} has depth ${depth}, past what its bounds share`;
      }
      for (let i = 0; i < n; i++) {
        const id = this.ids[page[base + 2 * i] as number];
        if (id === undefined) return `chunk ${c} holds slot ${page[base + 2 * i]}, which has no id`;
        if (prev !== undefined && !(prev < id)) return `${JSON.stringify(prev)} before ${JSON.stringify(id)}`;
        const key = page[base + 2 * i + 1];
        if (key !== keyAt(id, depth)) return `chunk ${c} has a stale key for ${JSON.stringify(id)}`;
        prev = id;
      }
      const last = this.#lasts[c] as string;
      if (last !== prev) return `chunk ${c} records ${JSON.stringify(last)} as its last id`;
      if (!last.startsWith(this.#topPrefix) || this.#lastKeys[c] !== keyAt(last, this.#top)) {
        return `chunk ${c} has a stale key for its last id`;
      }
      total += n;
    }
    return total === this.#size ? undefined : `the chunks hold ${total} slots, the order counts ${this.#size}`;
  }

  #page(c: number): Uint32Array {
    return this.#pages[(this.#blocks[c] as number) >> PAGE_SHIFT] as Uint32Array;
  }

  /** Where chunk `c`'s block starts in its page. */
  #base(c: number): number {
    return ((this.#blocks[c] as number) & (PAGE_BLOCKS - 1)) * BLOCK;
  }

  /** The first chunk whose last id is >= `id`; the number of chunks if none is. By keys when `id` shares `#topPrefix`. */
  #chunkOf(id: string): number {
    const lasts = this.#lasts;
    let lo = 0;
    let hi = lasts.length;
    if (id.startsWith(this.#topPrefix)) {
      const keys = this.#lastKeys;
      const key = keyAt(id, this.#top);
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const k = keys[mid] as number;
        if (k < key || (k === key && (lasts[mid] as string) < id)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((lasts[mid] as string) < id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The first position of chunk `c` whose id is >= `id`, for an `id` between the chunk's
   * bounds (`#chunkOf` found it): by keys, reading ids only where keys tie. A chunk whose
   * searches keep meeting ties gets its keys made deeper.
   */
  #place(c: number, id: string): number {
    const ids = this.ids;
    const page = this.#page(c);
    const at = this.#base(c);
    const key = keyAt(id, this.#depths[c] as number);
    let tied = false;
    let lo = 0;
    let hi = this.#counts[c] as number;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const k = page[at + 2 * mid + 1] as number;
      if (k === key) tied = true;
      if (k < key || (k === key && (ids[page[at + 2 * mid] as number] as string) < id)) lo = mid + 1;
      else hi = mid;
    }
    if (tied) this.#tied(c);
    return lo;
  }

  /**
   * Counts a search of chunk `c` that read ids; after `TIES` of them, makes its keys
   * from as deep as its bounds allow, if that is deeper (a split narrows the bounds).
   */
  #tied(c: number): void {
    const t = (this.#ties[c] as number) + 1;
    if (t < TIES) {
      this.#ties[c] = t;
      return;
    }
    this.#ties[c] = 0;
    const shared = this.#bounds(c);
    if (shared > (this.#depths[c] as number)) this.#rekey(c, shared);
  }

  /** Puts `slot` (id `id`) at position `i` of chunk `c`, which has room. */
  #put(c: number, i: number, slot: number, id: string): void {
    const page = this.#page(c);
    const at = this.#base(c);
    const n = this.#counts[c] as number;
    if (i < n) page.copyWithin(at + 2 * (i + 1), at + 2 * i, at + 2 * n);
    page[at + 2 * i] = slot;
    page[at + 2 * i + 1] = keyAt(id, this.#depths[c] as number);
    this.#counts[c] = n + 1;
    if (i === n) this.#setLast(c, id);
  }

  /** Records `id` as chunk `c`'s last id, with its key; one that does not share `#topPrefix` makes every key again. */
  #setLast(c: number, id: string): void {
    this.#lasts[c] = id;
    if (id.startsWith(this.#topPrefix)) this.#lastKeys[c] = keyAt(id, this.#top);
    else this.#retop();
  }

  /** Takes the prefix every last id shares as `#topPrefix`, and makes their keys from there. */
  #retop(): void {
    const lasts = this.#lasts;
    const first = lasts[0] ?? '';
    this.#top = commonPrefix(first, lasts[lasts.length - 1] ?? '');
    this.#topPrefix = first.slice(0, this.#top);
    if (this.#lastKeys.length < lasts.length) this.#lastKeys = new Uint32Array(2 * lasts.length);
    const keys = this.#lastKeys;
    for (let c = 0; c < lasts.length; c++) keys[c] = keyAt(lasts[c] as string, this.#top);
  }

  /**
   * Inserts an empty chunk at position `c` whose keys will be made at `depth`, on a free
   * block; returns `c`. Its last id is left to the caller, which fills it before any search.
   */
  #addChunk(c: number, depth: number): number {
    let block = this.#free.pop();
    if (block === undefined) {
      const pages = this.#pages;
      pages.push(new Uint32Array(PAGE_BLOCKS * BLOCK));
      const first = (pages.length - 1) * PAGE_BLOCKS;
      for (let b = first + PAGE_BLOCKS - 1; b > first; b--) this.#free.push(b);
      block = first;
    }
    this.#blocks.splice(c, 0, block);
    this.#counts.splice(c, 0, 0);
    this.#lasts.splice(c, 0, '');
    this.#depths.splice(c, 0, depth);
    this.#ties.splice(c, 0, 0);
    let keys = this.#lastKeys;
    const m = this.#lasts.length;
    if (keys.length < m) {
      keys = new Uint32Array(keys.length * 2);
      keys.set(this.#lastKeys);
      this.#lastKeys = keys;
    }
    keys.copyWithin(c + 1, c, m - 1);
    // The last ids may share more than `#top` says (the first ones said less): looked at as the chunks double.
    if (
      (m & (m - 1)) === 0 &&
      m > 1 &&
      commonPrefix(this.#lasts[0] as string, this.#lasts[m - 1] as string) > this.#top
    ) {
      this.#retop();
    }
    return c;
  }

  #removeChunk(c: number): void {
    this.#free.push(this.#blocks[c] as number);
    this.#blocks.splice(c, 1);
    this.#counts.splice(c, 1);
    this.#lasts.splice(c, 1);
    this.#depths.splice(c, 1);
    this.#ties.splice(c, 1);
    this.#lastKeys.copyWithin(c, c + 1, this.#lasts.length + 1);
  }

  /** The common prefix of chunk `c`'s bounds: the last id before it (none for the first chunk) and its own last. */
  #bounds(c: number): number {
    return c === 0 ? 0 : commonPrefix(this.#lasts[c - 1] as string, this.#lasts[c] as string);
  }

  /** After chunk `c`'s bounds moved apart: makes its keys again, shallower, if its depth no longer holds. */
  #fit(c: number): void {
    if (c >= this.#blocks.length) return;
    const shared = this.#bounds(c);
    if (shared < (this.#depths[c] as number)) this.#rekey(c, shared);
  }

  /** Makes chunk `c`'s keys at `depth`. */
  #rekey(c: number, depth: number): void {
    const ids = this.ids;
    const page = this.#page(c);
    const at = this.#base(c);
    const n = this.#counts[c] as number;
    this.#depths[c] = depth;
    for (let i = 0; i < n; i++) page[at + 2 * i + 1] = keyAt(ids[page[at + 2 * i] as number] as string, depth);
  }

  /** Moves sparse chunk `c` into a neighbour that has room for it, keeping memory near 8 bytes per id. */
  #joinSparse(c: number): void {
    const n = this.#counts[c] as number;
    const room = (at: number) => at >= 0 && at < this.#blocks.length && (this.#counts[at] as number) + n <= CHUNK / 2;
    const into = room(c - 1) ? c - 1 : room(c + 1) ? c + 1 : -1;
    if (into < 0) return;
    const from = this.#page(c);
    const at = this.#base(c);
    const target = this.#page(into);
    const to = this.#base(into);
    const m = this.#counts[into] as number;
    if (into < c) {
      target.set(from.subarray(at, at + 2 * n), to + 2 * m);
      this.#setLast(into, this.#lasts[c] as string);
    } else {
      target.copyWithin(to + 2 * n, to, to + 2 * m);
      target.set(from.subarray(at, at + 2 * n), to);
    }
    this.#counts[into] = m + n;
    this.#removeChunk(c);
    // The joined chunk spans the bounds of both, and its keys were made at two depths.
    const joined = into < c ? into : c;
    this.#rekey(joined, this.#bounds(joined));
  }
}

/**
 * Four code units of `id` from `depth` on, one byte each, as a number below 2^32 that
 * orders as the ids do (ties allowed) among ids that share their first `depth` units:
 * a unit u is u + 1, the end of the id 0. A unit past 253 is 255 and ends the key (the
 * rest 0), so that two ids whose units both become 255 tie instead of being told apart
 * by what follows.
 */
export function keyAt(id: string, depth: number): number {
  let key = 0;
  let open = true;
  for (let j = 0; j < 4; j++) {
    let b = 0;
    if (open) {
      const at = depth + j;
      if (at >= id.length) {
        open = false;
      } else {
        const u = id.charCodeAt(at);
        if (u >= 254) {
          b = 255;
          open = false;
        } else {
          b = u + 1;
        }
      }
    }
    key = key * 256 + b;
  }
  return key;
}

/** Code units `a` and `b` share at their start. */
function commonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}
