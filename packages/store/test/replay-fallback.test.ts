import type { GossipError } from '@gossip/protocol';
import { describe, expect, it, vi } from 'vitest';
import { framedRows, rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * `replayFrames` where the WebAssembly of src/kernel.ts cannot run (--jitless, a
 * big-endian host): `frameWindow` declines, and the store frames each window in JS.
 * The same messages must come out, and a damaged record must be left out the same way.
 */

vi.mock('../src/kernel.js', async (original) => ({
  ...(await original<typeof import('../src/kernel.js')>()),
  frameWindow: () => undefined,
}));

const { openStore } = tempStores('gossip-store-fallback-');

describe('replayFrames without WebAssembly', () => {
  it('replayFrames - the same messages as replay, whether the records lie in ts order or not', async () => {
    const store = await openStore({ segmentBytes: 2048, compactThreshold: 0 });
    for (let i = 0; i < 60; i++) await store.append(`in-${i}`, BigInt(1000 + i), Buffer.from(`in ${i}`));
    for (let i = 0; i < 60; i++) {
      await store.append(`out-${i % 40}`, BigInt(500 - i), i % 9 === 0 ? Buffer.alloc(0) : Buffer.alloc(i * 3, i));
    }
    for (const since of [null, 470n, 1030n]) {
      const want = await rows(store, since);
      expect(want.length).toBeGreaterThan(0);
      for (const batchBytes of [1, 300, 1 << 20]) {
        expect(await framedRows(store, since, batchBytes), `since ${since}, batches of ${batchBytes}`).toEqual(want);
      }
    }
  });

  it('replayFrames - leaves out a record that fails its checksum, and goes on', async () => {
    const warns: string[] = [];
    const logger = { info: () => undefined, warn: (_o: object, m: string) => warns.push(m), error: () => undefined };
    const store = await openStore({ logger });
    for (let i = 0; i < 10; i++) await store.append(`k${i}`, BigInt(i + 1), Buffer.from(`value ${i}`));
    await store.flush();
    const got = await store.get('k3');
    expect(got?.data.toString()).toBe('value 3');
    // Damage k3's data on disk through the store's own read path: overwrite its bytes in the segment.
    const { open, readdir } = await import('node:fs/promises');
    const name = (await readdir(store.dir)).find((n) => n.endsWith('.seg')) as string;
    const file = await open(`${store.dir}/${name}`, 'r+');
    const bytes = await file.readFile();
    const at = bytes.indexOf('value 3');
    await file.write(Buffer.from('VALUE 3'), 0, 7, at);
    await file.close();
    expect((await framedRows(store, null, 1 << 20)).map(([id]) => id)).toEqual([
      'k0',
      'k1',
      'k2',
      'k4',
      'k5',
      'k6',
      'k7',
      'k8',
      'k9',
    ]);
    expect(warns.filter((w) => w.includes('fails its checksum'))).toHaveLength(1);
    const error = await store.get('k3').catch((e: unknown) => e);
    expect((error as GossipError).code).toBe('GOSSIP_ERR_STORE_CORRUPT');
  });
});
