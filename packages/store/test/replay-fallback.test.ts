import { describe, expect, it, vi } from 'vitest';
import { frameWindow, spanChecksums } from '../src/kernel.js';
import { ReplayWindow } from '../src/replay.js';
import { replayFramesTests } from './replay-frames.suite.js';
import { tempStores } from './temp-stores.js';

/*
 * The store where WebAssembly cannot run (`node --jitless`, a big-endian host): the
 * replay tests again, with every window checked and framed by the JS loops.
 */

// The module is instantiated on first use, so this file's store never has WebAssembly.
vi.stubGlobal('WebAssembly', undefined);

const { openStore } = tempStores('gossip-store-fallback-');

describe('without WebAssembly', () => {
  it('frameWindow declines, and spanChecksums computes in JS', () => {
    const w = new ReplayWindow(1);
    expect(
      frameWindow(w, { n: 0, changes: 0, slots: new Uint32Array(0), lo: new Uint32Array(0), hi: new Uint32Array(0) }),
    ).toBeUndefined();
    const buf = Buffer.from('123456789');
    const records = {
      bufs: [buf],
      count: 1,
      buf: Uint32Array.of(0),
      at: Uint32Array.of(0),
      size: Uint32Array.of(9),
      bytes: 9,
    };
    expect([...spanChecksums(records, 0)]).toEqual([0xcbf43926]);
  });

  replayFramesTests(openStore);
});
