import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import { IndexTable, type Replaced } from '../src/index-table.js';
import { tempStores } from './temp-stores.js';

const { openStore, opened } = tempStores('gossip-store-index-');

/**
 * The index's pending appends (docs/STORAGE.md, S3 and "Index"), held to a model: per id,
 * the newest written ts and the pending appends' ts.
 */
describe('index pending appends', () => {
  const replaced: Replaced = { seg: 0, size: 0 };

  it('index pending - many ids pending at once, some several times, then written or failed in any order', () => {
    const index = new IndexTable();
    const rand = mulberry32(17);
    const written = new Map<string, bigint>();
    const pending: { id: string; slot: number; ts: bigint }[] = [];
    let ts = 1n;
    for (let round = 0; round < 40; round++) {
      // Up to 600 appends in flight, over 300 ids, some ids several times.
      const want = 1 + Math.floor(rand() * 600);
      while (pending.length < want) {
        const id = `id/${Math.floor(rand() * 300)}`;
        // Now and then an older ts: stale if anything newer is written or pending.
        const t = rand() < 0.2 ? ts - BigInt(Math.floor(rand() * 50)) : ts++;
        const newest = [written.get(id), ...pending.filter((p) => p.id === id).map((p) => p.ts)].reduce<
          bigint | undefined
        >((a, b) => (b !== undefined && (a === undefined || b > a) ? b : a), undefined);
        const slot = index.tryPend(id, t);
        if (newest !== undefined && t <= newest) {
          expect(slot).toBe(-1);
          continue;
        }
        expect(slot).toBeGreaterThanOrEqual(0);
        pending.push({ id, slot, ts: t });
      }
      // Settle a random part of them, in a random order: most written, some failed.
      const settle = Math.floor(rand() * pending.length) + 1;
      for (let k = 0; k < settle; k++) {
        const [p] = pending.splice(Math.floor(rand() * pending.length), 1);
        if (!p) break;
        if (rand() < 0.8) {
          const applied = index.commit(p.slot, p.ts, 1, 16, 40, false, replaced);
          const before = written.get(p.id);
          expect(applied).toBe(before === undefined || p.ts > before);
          if (applied) written.set(p.id, p.ts);
        } else {
          index.unpend(p.slot);
        }
      }
      // Readers see written records only; an id whose appends all failed is gone.
      for (let i = 0; i < 300; i++) {
        const id = `id/${i}`;
        const slot = index.slotOf(id);
        const w = written.get(id);
        if (w === undefined) expect(slot).toBeUndefined();
        else expect(slot !== undefined && index.ts(slot)).toBe(w);
      }
      expect(index.count).toBe(written.size);
    }
  });

  it('index pending - a dropped record with appends still pending keeps its id until they settle', () => {
    const index = new IndexTable();
    const first = index.tryPend('a', 10n);
    expect(index.commit(first, 10n, 3, 16, 40, true, replaced)).toBe(true);
    const again = index.tryPend('a', 20n);
    expect(again).toBe(first);
    expect(index.drop('a', 3, 16)).toBe(true);
    expect(index.slotOf('a')).toBeUndefined();
    // The pending append still counts for the newest-ts check…
    expect(index.tryPend('a', 15n)).toBe(-1);
    // …and, once it fails, nothing of the id is left: an older ts is taken again.
    index.unpend(again);
    const fresh = index.tryPend('a', 5n);
    expect(fresh).toBeGreaterThanOrEqual(0);
    expect(index.commit(fresh, 5n, 3, 56, 40, false, replaced)).toBe(true);
    expect(index.ts(index.slotOf('a') as number)).toBe(5n);
  });

  it('index pending - settling a slot with nothing pending is a bug, said at once', () => {
    const index = new IndexTable();
    const slot = index.tryPend('a', 1n);
    index.commit(slot, 1n, 1, 16, 40, false, replaced);
    expect(() => index.unpend(slot)).toThrow(/no pending append/);
  });
});

describe('index restore', () => {
  const replaced: Replaced = { seg: 0, size: 0 };
  const put = (index: IndexTable, id: string, ts: bigint, off: number) => {
    const slot = index.tryPend(id, ts);
    expect(slot).toBeGreaterThanOrEqual(0);
    expect(index.commit(slot, ts, 1, off, 40, false, replaced)).toBe(true);
  };

  it('index restore - the restored index grows past its entries when ids are added', () => {
    const before = new IndexTable();
    for (let i = 0; i < 10; i++) put(before, `id/${i}`, BigInt(100 + i), 16 + 40 * i);
    const columns = before.columns();
    const index = new IndexTable();
    expect(index.restore(columns, before.newest())).toBe('ordered');
    // Past its 10 entries it grows; every id keeps its record.
    for (let i = 10; i < 300; i++) put(index, `id/${i}`, BigInt(100 + i), 16 + 40 * i);
    expect(index.tryPend('id/3', 50n)).toBe(-1);
    for (let i = 0; i < 300; i++) {
      const slot = index.slotOf(`id/${i}`) as number;
      expect([index.ts(slot), index.offset(slot)]).toEqual([BigInt(100 + i), 16 + 40 * i]);
    }
    expect(index.count).toBe(300);
    expect(index.columns().ids.length).toBe(300);
  });

  it('index restore - an empty checkpoint restores nothing, and the index takes ids after it', () => {
    const empty = new IndexTable();
    expect(empty.restore(new IndexTable().columns(), null)).toBe('ordered');
    expect(empty.count).toBe(0);
    put(empty, 'b', 2n, 16);
    expect(empty.count).toBe(1);
  });
});

describe('index restore without its Map filled', () => {
  const replaced: Replaced = { seg: 0, size: 0 };

  it('index restore - lookups by the id order while the Map fills answer as a filled index does, through adds, drops and failed appends', () => {
    const rand = mulberry32(5);
    const source = new IndexTable();
    const N = 5000;
    for (let i = 0; i < N; i++) {
      const slot = source.tryPend(`user/${(i * 7919) % N}`, BigInt(100 + i));
      source.commit(slot, BigInt(100 + i), 1, 16 + 40 * i, 40, false, replaced);
    }
    const lazy = new IndexTable();
    const filled = new IndexTable();
    expect(lazy.restore(source.columns(), source.newest())).toBe('ordered');
    expect(filled.restore(source.columns(), source.newest())).toBe('ordered');
    expect(filled.fillSlots(Number.POSITIVE_INFINITY)).toBe(true);
    const id = () => (rand() < 0.8 ? `user/${Math.floor(rand() * N)}` : `new/${Math.floor(rand() * 2000)}`);
    const pending: { id: string; slot: number; ts: bigint }[] = [];
    let ts = 10_000n;
    let done = false;
    for (let step = 0; step < 4000; step++) {
      const r = rand();
      if (r < 0.45) {
        const x = id();
        const t = rand() < 0.1 ? BigInt(Math.floor(rand() * 200)) : ts++;
        const a = lazy.tryPend(x, t);
        expect(filled.tryPend(x, t)).toBe(a);
        if (a >= 0) pending.push({ id: x, slot: a, ts: t });
      } else if (r < 0.75 && pending.length > 0) {
        const [p] = pending.splice(Math.floor(rand() * pending.length), 1);
        if (!p) continue;
        if (rand() < 0.85) {
          const off = 16 + 40 * (N + step);
          const tomb = rand() < 0.2;
          expect(lazy.commit(p.slot, p.ts, 2, off, 40, tomb, replaced)).toBe(
            filled.commit(p.slot, p.ts, 2, off, 40, tomb, replaced),
          );
        } else {
          lazy.unpend(p.slot);
          filled.unpend(p.slot);
        }
      } else if (r < 0.85) {
        // A compaction dropping a record, if it still points where it did.
        const x = id();
        const slot = filled.slotOf(x);
        if (slot === undefined) continue;
        const [seg, off] = [filled.segment(slot), filled.offset(slot)];
        expect(lazy.drop(x, seg, off)).toBe(filled.drop(x, seg, off));
      } else if (!done) {
        done = lazy.fillSlots(1 + Math.floor(rand() * 20));
        if (step < 2000) expect(done).toBe(false);
      }
      // A few lookups after every step: the same slot, ts and place.
      for (let k = 0; k < 3; k++) {
        const x = id();
        const slot = lazy.slotOf(x);
        expect(slot).toBe(filled.slotOf(x));
        if (slot !== undefined)
          expect([lazy.ts(slot), lazy.offset(slot)]).toEqual([filled.ts(slot), filled.offset(slot)]);
      }
    }
    expect(done || lazy.fillSlots(Number.POSITIVE_INFINITY)).toBe(true);
    expect(lazy.count).toBe(filled.count);
    expect(lazy.orderProblem()).toBeUndefined();
    expect(lazy.columns()).toEqual(filled.columns());
  });

  it('index restore - a scan’s load after a restore (deferOrder) finds the ids the Map does not hold yet', () => {
    const source = new IndexTable();
    for (let i = 0; i < 100; i++) {
      const slot = source.tryPend(`k/${i}`, BigInt(i + 1));
      source.commit(slot, BigInt(i + 1), 1, 16 + 40 * i, 40, false, replaced);
    }
    const index = new IndexTable();
    expect(index.restore(source.columns(), source.newest())).toBe('ordered');
    index.deferOrder();
    // Each id keeps its one slot: none is taken again as new.
    expect(index.load('k/7', 500n, 2, 16, 40, false, replaced)).toBe(true);
    expect(index.load('k/8', 1n, 2, 56, 40, false, replaced)).toBe(false);
    expect(index.count).toBe(100);
    index.sortOrder();
    expect(index.orderProblem()).toBeUndefined();
    expect(index.ts(index.slotOf('k/7') as number)).toBe(500n);
  });

  it('index restore - a store reopened on 20 k ids serves, appends and compacts while its index fills the Map', async () => {
    const N = 20_000;
    let store = await openStore({ fsync: 'never', compactThreshold: 0 });
    const value = (i: number, v: number) => Buffer.from(`${i}:${v}`);
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, k) => store.append(`id/${i + k}`, BigInt(i + k + 1), value(i + k, 0))),
      );
    }
    await store.close();
    opened.length = 0;
    store = await openStore({ fsync: 'never', compactThreshold: 0 });
    // At once, before the store's first fill stretch: stale and newer appends of ids
    // the Map does not hold yet, new ids, and reads.
    const appends = [];
    for (let i = 0; i < N; i += 97) {
      appends.push(store.append(`id/${i}`, BigInt(i + 1), value(i, 9)));
      appends.push(store.append(`id/${i}`, BigInt(N + i + 1), value(i, 1)));
      appends.push(store.append(`new/${i}`, BigInt(2 * N + i), value(i, 2)));
    }
    const statuses = (await Promise.all(appends)).map((r) => r.status);
    expect(statuses.filter((x) => x === 'stale').length).toBe(Math.ceil(N / 97));
    expect(statuses.filter((x) => x === 'accepted').length).toBe(2 * Math.ceil(N / 97));
    expect(store.stats().ids).toBe(N + Math.ceil(N / 97));
    for (let i = 0; i < N; i += 97) {
      expect((await store.get(`id/${i}`))?.data.toString()).toBe(`${i}:1`);
      expect((await store.get(`id/${i + 1}`))?.data.toString()).toBe(i + 1 < N ? `${i + 1}:0` : undefined);
    }
    await store.compact();
    expect((await store.get('id/97'))?.data.toString()).toBe('97:1');
    expect(store.stats().ids).toBe(N + Math.ceil(N / 97));
  });

  it('index restore - an order that does not hold is sorted, and a repeated id still refuses the checkpoint', () => {
    const source = new IndexTable();
    for (const [i, x] of ['b', 'a', 'c'].entries()) {
      const slot = source.tryPend(x, BigInt(i + 1));
      source.commit(slot, BigInt(i + 1), 1, 16 + 40 * i, 40, false, replaced);
    }
    const columns = source.columns();
    const unordered = { ...columns, sorted: ['c', 'b', 'a'], order: new Uint32Array([2, 0, 1]) };
    const index = new IndexTable();
    expect(index.restore(unordered, 3n)).toBe('sorted');
    expect(index.orderProblem()).toBeUndefined();
    expect(['a', 'b', 'c'].map((x) => index.ts(index.slotOf(x) as number))).toEqual([2n, 1n, 3n]);
    const repeated = { ...columns, ids: ['a', 'a', 'c'], sorted: null, order: null };
    expect(new IndexTable().restore(repeated, 3n)).toBe('an id repeats');
  });
});
