import { mulberry32 } from '@gossip/protocol/testing';
import { describe, expect, it } from 'vitest';
import { IndexTable, type Replaced } from '../src/index-table.js';

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
