import { crc32 } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { spanChecksums } from '../src/kernel.js';
import { replayFramesTests } from './replay-frames.suite.js';
import { framedRows, rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * The replay's WebAssembly when its memory cannot grow past the one page it starts
 * with (src/kernel.ts): every window that needs more goes to the JS loops, and the
 * replays give the same messages as with it.
 */

interface Memory {
  grow(pages: number): number;
}
const { Memory } = (globalThis as unknown as { WebAssembly: { Memory: { prototype: Memory } } }).WebAssembly;
const grow = vi.spyOn(Memory.prototype, 'grow').mockImplementation(() => {
  throw new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded');
});

const { openStore } = tempStores('gossip-store-no-memory-');

describe('WebAssembly memory that cannot grow', () => {
  it('spanChecksums computes in JS what needs more memory', () => {
    const big = Buffer.alloc(256 * 1024, 0x5a);
    const records = {
      bufs: [big],
      count: 1,
      buf: Uint32Array.of(0),
      at: Uint32Array.of(0),
      size: Uint32Array.of(big.length),
      bytes: big.length,
    };
    expect([...spanChecksums(records, 4)]).toEqual([crc32(big.subarray(4))]);
    expect(grow).toHaveBeenCalled();
  });

  it('replayFrames - a window larger than the memory: the same messages as replay', async () => {
    const store = await openStore();
    for (let i = 0; i < 300; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.alloc(1000, i));
    grow.mockClear();
    const want = await rows(store);
    expect(want).toHaveLength(300);
    expect(await framedRows(store, null, 1 << 20)).toEqual(want);
    expect(grow).toHaveBeenCalled();
  });

  replayFramesTests(openStore);
});
