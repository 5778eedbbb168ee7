import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import { sortByTs, type TsKeys } from '../src/sort.js';

/*
 * The replay's radix sort on ts words (src/sort.ts), against a sort of the bigints
 * themselves: insertion sort below 64 keys, 11-bit digits up to 64 k keys, 16-bit above.
 */

const SIGN = 0x80000000;

/** Keys as the index makes them: low word, and high word with its sign bit flipped. */
function keysOf(ts: bigint[]): TsKeys {
  const n = ts.length;
  const k: TsKeys = { slots: new Uint32Array(n), lo: new Uint32Array(n), hi: new Uint32Array(n) };
  ts.forEach((t, i) => {
    k.slots[i] = i;
    k.lo[i] = Number(t & 0xffffffffn);
    k.hi[i] = (Number((t >> 32n) & 0xffffffffn) ^ SIGN) >>> 0;
  });
  return k;
}

function sample(n: number, rng: () => number, kind: string): bigint[] {
  const word = () => BigInt(Math.floor(rng() * 2 ** 32));
  return Array.from({ length: n }, () => {
    switch (kind) {
      case 'any': // the whole signed range
        return BigInt.asIntN(64, (word() << 32n) | word());
      case 'around-zero': // negative and positive, crossing the 32-bit word boundary
        return BigInt(Math.floor((rng() - 0.5) * 2 ** 40));
      case 'one-day': // nanosecond timestamps of one day: the top bits shared
        return 1_800_000_000_000_000_000n + BigInt(Math.floor(rng() * 86_400e9));
      default: // many equal keys: stability decides
        return BigInt(Math.floor(rng() * 5)) - 2n;
    }
  });
}

describe('sortByTs', () => {
  for (const n of [0, 1, 5, 63, 64, 5_000, 70_000]) {
    for (const kind of ['any', 'around-zero', 'one-day', 'few']) {
      it(`sortByTs - ${n} keys, ${kind}: ascending ts, equal ts in slot order`, () => {
        const ts = sample(n, mulberry32(n * 31 + kind.length), kind);
        const keys = keysOf(ts);
        sortByTs(keys, n);
        const want = ts.map((t, i) => ({ t, i })).sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.i - b.i));
        expect(Array.from(keys.slots)).toEqual(want.map((x) => x.i));
        const back = Array.from(keys.slots, (_, j) =>
          BigInt.asIntN(64, (BigInt(((keys.hi[j] as number) ^ SIGN) >>> 0) << 32n) | BigInt(keys.lo[j] as number)),
        );
        expect(back).toEqual(want.map((x) => x.t));
      });
    }
  }
});
