import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';
const RADIX_MIN = 2048;

/**
 * Sorts `slots` in place by `ts[slot]` ascending (ties by slot). Replay needs ascending
 * ts over up to millions of ids; a comparator sort costs ~20 comparisons per id, so
 * large inputs go through an LSD radix sort on 16-bit digits of the 64-bit key,
 * skipping digits that are equal across all keys (timestamps of one day share their
 * top bits).
 */
export function sortSlotsByTs(slots: Uint32Array, ts: BigInt64Array): Uint32Array {
  const n = slots.length;
  if (n < RADIX_MIN || !LITTLE_ENDIAN) {
    return slots.sort((a, b) => {
      const x = ts[a] as bigint;
      const y = ts[b] as bigint;
      return x < y ? -1 : x > y ? 1 : a - b;
    });
  }
  const words = new Uint32Array(ts.buffer, ts.byteOffset, ts.length * 2);
  // Keys as four 16-bit digits, least significant first; the sign bit flipped so
  // that signed order becomes unsigned order.
  const lo = new Uint32Array(n);
  const hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const s = slots[i] as number;
    lo[i] = words[2 * s] as number;
    hi[i] = ((words[2 * s + 1] as number) ^ 0x80000000) >>> 0;
  }
  type Keys = { slots: Uint32Array; lo: Uint32Array; hi: Uint32Array };
  let src: Keys = { slots, lo, hi };
  let dst: Keys = { slots: new Uint32Array(n), lo: new Uint32Array(n), hi: new Uint32Array(n) };
  const counts = new Uint32Array(65536);
  for (let pass = 0; pass < 4; pass++) {
    const word: Uint32Array = pass < 2 ? src.lo : src.hi;
    const shift = pass % 2 === 0 ? 0 : 16;
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const d = ((word[i] as number) >>> shift) & 0xffff;
      counts[d] = (counts[d] as number) + 1;
    }
    if (counts[((word[0] as number) >>> shift) & 0xffff] === n) continue; // one digit value: already in order
    let sum = 0;
    for (let d = 0; d < 65536; d++) {
      const c = counts[d] as number;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const d = ((word[i] as number) >>> shift) & 0xffff;
      const j = counts[d] as number;
      counts[d] = j + 1;
      dst.slots[j] = src.slots[i] as number;
      dst.lo[j] = src.lo[i] as number;
      dst.hi[j] = src.hi[i] as number;
    }
    const t = src;
    src = dst;
    dst = t;
  }
  if (src.slots !== slots) slots.set(src.slots);
  return slots;
}
