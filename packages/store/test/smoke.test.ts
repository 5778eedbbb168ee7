import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, Store } from '@gossip/store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gossip-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('store', () => {
  it('store - DEFAULTS are the defaults an open without options takes', async () => {
    expect(DEFAULTS).toEqual({
      fsync: 'interval',
      fsyncIntervalMs: 100,
      segmentBytes: 64 * 1024 * 1024,
      maxDataBytes: 10 * 1024 * 1024,
      compactThreshold: 0.5,
      compactCheckMs: 10_000,
      tombstoneRetentionMs: 24 * 3600 * 1000,
      corruption: 'skip',
      warm: true,
    });
    const store = await Store.open({ dir });
    expect(store.fsyncMode).toBe(DEFAULTS.fsync);
    expect(store.maxDataBytes).toBe(DEFAULTS.maxDataBytes);
    expect((await store.append('a', 1n, Buffer.from('x'))).durability).toBe('written');
    await store.close();
  });

  it('store - appends, serves, replays and survives a reopen', async () => {
    let store = await Store.open({ dir, fsync: 'always' });
    expect(await store.append('a', 10n, Buffer.from('one'))).toEqual({ status: 'accepted', durability: 'synced' });
    expect(await store.append('a', 10n, Buffer.from('again'))).toEqual({ status: 'stale', durability: 'none' });
    await Promise.all([store.append('b', 5n, Buffer.from('bee')), store.append('a', 20n, Buffer.from('two'))]);
    expect((await store.get('a'))?.data.toString()).toBe('two');
    const seen = [];
    for await (const m of store.replay(null)) seen.push([m.id, m.ts, m.data.toString()]);
    expect(seen).toEqual([
      ['b', 5n, 'bee'],
      ['a', 20n, 'two'],
    ]);
    const epoch = store.epoch;
    await store.close();
    store = await Store.open({ dir });
    expect(store.epoch).toBe(epoch);
    expect(store.stats().ids).toBe(2);
    expect((await store.get('a'))?.ts).toBe(20n);
    await store.close();
  });

  it('store - compacts rolled segments and drops old tombstones', async () => {
    const store = await Store.open({ dir, segmentBytes: 4096, compactThreshold: 0, tombstoneRetentionMs: 1 });
    for (let i = 0; i < 500; i++) await store.append(`k${i % 50}`, BigInt(i + 1), Buffer.alloc(40, i));
    await store.append('k0', 1000n, Buffer.alloc(0));
    for (let i = 0; i < 100; i++) await store.append(`z${i}`, BigInt(2000 + i), Buffer.alloc(40, i));
    const before = store.stats();
    const result = await store.compact();
    const after = store.stats();
    expect(result.runs).toBeGreaterThan(0);
    expect(after.segments).toBeLessThan(before.segments);
    expect(after.deadRatio).toBeLessThan(before.deadRatio);
    expect(result.tombstonesDropped).toBe(1);
    expect(store.horizon).toBe(1000n);
    expect(await store.get('k0')).toBeUndefined();
    expect((await store.get('k1'))?.ts).toBe(452n);
    await store.close();
    const again = await Store.open({ dir });
    expect(again.stats().ids).toBe(149);
    expect(again.horizon).toBe(1000n);
    await again.close();
  });
});
