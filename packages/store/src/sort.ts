/**
 * Entries to sort by ts: `slots[i]` with its ts as two unsigned 32-bit words, the high
 * one with its sign bit flipped so that unsigned order is the signed order of the ts.
 * The words are what a replay checks records against, so no BigInt is made per id.
 */
export interface TsKeys {
  slots: Uint32Array;
  lo: Uint32Array;
  hi: Uint32Array;
}

const SMALL = 64;

/**
 * Sorts the first `n` entries of `keys` in place by ts ascending, ties in their
 * current order (stable). Replay sorts up to millions of ids: a comparator sort costs
 * ~20 comparisons per id, so this is an LSD radix sort over only the low bits in which
 * the keys differ (timestamps of one day share their top bits), with 11-bit digits
 * for up to 64 k keys (few buckets to clear and sum) and 16-bit digits above.
 */
export function sortByTs(keys: TsKeys, n: number): void {
  if (n < 2) return;
  if (n < SMALL) {
    insertionSort(keys, n);
    return;
  }
  const { slots, lo, hi } = keys;
  // The highest bit in which any two keys differ bounds the digits to sort on.
  let orHi = 0;
  let orLo = 0;
  const hi0 = hi[0] as number;
  const lo0 = lo[0] as number;
  for (let i = 1; i < n; i++) {
    orHi |= (hi[i] as number) ^ hi0;
    orLo |= (lo[i] as number) ^ lo0;
  }
  const bits = orHi !== 0 ? 64 - Math.clz32(orHi) : 32 - Math.clz32(orLo);
  if (bits === 0) return; // all equal
  const width = n <= 65536 ? 11 : 16;
  const buckets = 1 << width;
  const mask = buckets - 1;
  const counts = new Uint32Array(buckets);
  let src: TsKeys = keys;
  let dst: TsKeys = { slots: new Uint32Array(n), lo: new Uint32Array(n), hi: new Uint32Array(n) };
  for (let shift = 0; shift < bits; shift += width) {
    counts.fill(0);
    const s = src;
    for (let i = 0; i < n; i++) {
      const d = digit(s.lo[i] as number, s.hi[i] as number, shift) & mask;
      counts[d] = (counts[d] as number) + 1;
    }
    let sum = 0;
    for (let d = 0; d < buckets; d++) {
      const c = counts[d] as number;
      counts[d] = sum;
      sum += c;
    }
    const t = dst;
    for (let i = 0; i < n; i++) {
      const l = s.lo[i] as number;
      const h = s.hi[i] as number;
      const d = digit(l, h, shift) & mask;
      const j = counts[d] as number;
      counts[d] = j + 1;
      t.slots[j] = s.slots[i] as number;
      t.lo[j] = l;
      t.hi[j] = h;
    }
    src = t;
    dst = s;
  }
  if (src !== keys) {
    slots.set(src.slots.subarray(0, n));
    lo.set(src.lo.subarray(0, n));
    hi.set(src.hi.subarray(0, n));
  }
}

/** Bits `shift` and up of the 64-bit key (hi:lo); the caller masks to a digit. */
function digit(lo: number, hi: number, shift: number): number {
  if (shift >= 32) return hi >>> (shift - 32);
  if (shift === 0) return lo;
  return (lo >>> shift) | (hi << (32 - shift));
}

function insertionSort(keys: TsKeys, n: number): void {
  const { slots, lo, hi } = keys;
  for (let i = 1; i < n; i++) {
    const s = slots[i] as number;
    const l = lo[i] as number;
    const h = hi[i] as number;
    let j = i - 1;
    while (j >= 0 && ((hi[j] as number) > h || ((hi[j] as number) === h && (lo[j] as number) > l))) {
      slots[j + 1] = slots[j] as number;
      lo[j + 1] = lo[j] as number;
      hi[j + 1] = hi[j] as number;
      j--;
    }
    slots[j + 1] = s;
    lo[j + 1] = l;
    hi[j + 1] = h;
  }
}
