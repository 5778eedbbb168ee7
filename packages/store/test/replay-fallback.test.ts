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
    expect([...spanChecksums([buf], 1, Uint32Array.of(0), Uint32Array.of(0), Uint32Array.of(9), 0)]).toEqual([
      0xcbf43926,
    ]);
  });

  replayFramesTests(openStore);
});
