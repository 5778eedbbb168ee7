import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { mulberry32 } from '@gossip/protocol/testing';
import { CHECKPOINT_FILE, type Store, type StoredMessage } from '@gossip/store';
import { beforeEach, describe, expect, it } from 'vitest';
import { IndexTable, type Replaced } from '../src/index-table.js';
import { ReplayWindow } from '../src/replay-window.js';
import { expectCode } from './expect-code.js';
import { batchRows, expectPrefixReplays, type Row, rows } from './replay-rows.js';
import { tempStores } from './temp-stores.js';

/*
 * A replay by prefix (`replay(since, { prefix })`, docs/STORAGE.md "Index" and "Replay"):
 * exactly the full replay's ids that start with the prefix, planned from the prefix's
 * stretch of the id order rather than from every id, and never an id outside it, even
 * when slots change hands during the replay.
 */

const stores = tempStores('gossip-store-prefix-');
const { openStore } = stores;
let dir: string;
beforeEach(() => {
  dir = stores.dir();
});

/** Far past every ts used here: every tombstone is past retention. */
const NOW = 10n ** 15n;
const OPTS = { segmentBytes: 32 * 1024, compactThreshold: 0, tombstoneRetentionMs: 1, now: () => NOW };

/**
 * Ids with shared prefixes and of different lengths, ids equal to other ids' prefixes,
 * code units a key cannot tell apart (254 and up), astral characters and long ids.
 */
function variedIds(): string[] {
  const ids: string[] = ['a', 'b', 'z'];
  for (let a = 0; a < 30; a++) {
    ids.push(`user/${a}`);
    for (let b = 0; b < 40; b++) ids.push(`user/${a}/${b}`);
  }
  for (let i = 0; i < 150; i++) ids.push(`ü/${i}`, `\u00fe${i}`, `\u00ff${i}`, `中文/${i}`);
  for (let i = 0; i < 80; i++) ids.push(`😀${i}`, `\u{10ffff}${i}`, `${'x'.repeat(200)}/${i}`);
  return ids;
}

const PREFIXES = [
  '',
  'u',
  'user',
  'user/',
  'user/1', // an id, and the prefix of 'user/1/…', 'user/10/…'
  'user/1/',
  'user/12/3',
  'user/29/39', // exactly one id
  'ü',
  'ü/1',
  '\u00fe',
  '\u00ff',
  '\u00ff1',
  '中',
  '😀',
  '😀1',
  '\u{10ffff}',
  'x'.repeat(100),
  'a',
  'nothing-here',
  '\uffff', // after every id
];

function shuffle<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** A store and a map of each id's newest value; every append takes the next ts, so no two records share one. */
class Tracked {
  readonly model = new Map<string, { ts: bigint; data: string }>();
  ts = 1000n;

  constructor(public store: Store) {}

  /** Appends in one tick: `null` data is a tombstone. */
  async append(items: [string, string | null][]): Promise<void> {
    const results = await Promise.all(
      items.map(([id, data]) => {
        const ts = this.ts++;
        const bytes = data === null ? Buffer.alloc(0) : Buffer.from(`${data}@${ts}`);
        this.model.set(id, { ts, data: bytes.toString('hex') });
        return this.store.append(id, ts, bytes);
      }),
    );
    for (const r of results) expect(r.status).toBe('accepted');
  }

  /** Forgets the ids whose tombstone a compaction dropped. */
  syncDropped(): number {
    let dropped = 0;
    for (const id of [...this.model.keys()]) {
      if (this.store.tsOf(id) === undefined) {
        expect(this.model.get(id)?.data, `${id} was dropped: it was a tombstone`).toBe('');
        this.model.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  /** The full replay against the model, and every prefix's replay against the full one. */
  async check(at: string): Promise<void> {
    const tss = [...this.model.values()].map((e) => e.ts).sort((x, y) => (x < y ? -1 : 1));
    const mid = tss[tss.length >> 1] ?? 0n;
    const newest = tss[tss.length - 1] ?? 0n;
    const sinces = [null, 0n, mid, newest, newest + 1n];
    const full = await expectPrefixReplays(this.store, PREFIXES, sinces, at);
    const want: Row[] = [...this.model]
      .map(([id, e]): Row => [id, e.ts, e.data])
      .sort((x, y) => (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
    expect(full.get(null), `the full replay ${at}`).toEqual(want);
    expect(full.get(mid), `the replay since the middle ts ${at}`).toEqual(want.filter(([, ts]) => ts >= mid));
  }
}

/** Runs a replay to its end. */
async function drain(replay: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of replay) n++;
  return n;
}

describe('replay by prefix', () => {
  it('replay prefix - the full replay filtered by the prefix, through updates, tombstones, compaction and reopens', async () => {
    const rand = mulberry32(0x9e7);
    const t = new Tracked(await openStore(OPTS));
    const ids = shuffle(variedIds(), rand);
    for (let k = 0; k < ids.length; k += 200) await t.append(ids.slice(k, k + 200).map((id) => [id, id]));
    await t.check('after the first appends');

    // Updates, in ts order unlike id order: the prefix's slots need sorting by ts.
    await t.append(
      shuffle([...ids], rand)
        .slice(0, 600)
        .map((id) => [id, `new ${id}`]),
    );
    await t.check('after updates');

    // Tombstones: still replayed, with empty data.
    const deleted = shuffle([...ids], rand).slice(0, 400);
    await t.append(deleted.map((id) => [id, null]));
    await t.check('after tombstones');

    // Compaction drops the tombstones past retention: their ids leave the index and the id order.
    await t.store.roll();
    const result = await t.store.compact();
    const dropped = t.syncDropped();
    expect(result.tombstonesDropped).toBe(dropped);
    expect(dropped, 'some tombstones were dropped').toBeGreaterThan(0);
    await t.check('after a compaction dropped tombstones');

    // New ids take the freed slots; some dropped ids come back.
    const back = deleted.filter((id) => !t.model.has(id)).slice(0, 100);
    const fresh = Array.from({ length: 300 }, (_, i) => `user/1/new-${i}`);
    await t.append([...back, ...fresh].map((id) => [id, `again ${id}`]));
    await t.check('after new ids took freed slots');

    // Close and reopen from the checkpoint: the id order comes from it.
    await t.store.close();
    t.store = await openStore(OPTS);
    expect(t.store.stats().recovery.checkpoint).toBe(true);
    await t.check('after a reopen from the checkpoint');
    await t.append(
      shuffle([...t.model.keys()], rand)
        .slice(0, 200)
        .map((id) => [id, `after load ${id}`]),
    );
    await t.check('after appends that followed the load');

    // Close and reopen by a scan: the id order is sorted once, after it.
    await t.store.close();
    await rm(join(dir, CHECKPOINT_FILE));
    t.store = await openStore(OPTS);
    expect(t.store.stats().recovery.checkpoint).toBe(false);
    await t.check('after a reopen by a scan');
    await t.append([
      ...shuffle([...t.model.keys()], rand)
        .slice(0, 200)
        .map((id): [string, string | null] => [id, null]),
      ...Array.from({ length: 50 }, (_, i): [string, string | null] => [`ü/after-scan/${i}`, 'x']),
    ]);
    await t.check('after appends that followed the scan');
  }, 60_000);

  it('replay prefix - undefined and "" are every id; replayBatches and replayRecords take the prefix too', async () => {
    const store = await openStore();
    for (const [i, id] of ['ab', 'a', 'b', 'abc', 'ä'].entries()) await store.append(id, BigInt(i), Buffer.from(id));
    const all = await rows(store);
    expect(all.map(([id]) => id)).toEqual(['ab', 'a', 'b', 'abc', 'ä']);
    expect(await rows(store, null, '')).toEqual(all);
    const ids = (batches: StoredMessage[][]) => batches.flat().map((m) => m.id);
    const batches: StoredMessage[][] = [];
    for await (const b of store.replayBatches(null, { prefix: 'ab' })) batches.push(b);
    expect(ids(batches)).toEqual(['ab', 'abc']);
    const records: Row[] = [];
    for await (const b of store.replayRecords(1n, { prefix: 'a' })) records.push(...batchRows(b));
    expect(records.map(([id]) => id)).toEqual(['a', 'abc']);
    expect(await rows(store, null, 'ä')).toEqual([['ä', 4n, Buffer.from('ä').toString('hex')]]);
    // Code units: 'a' + U+0308 (a combining mark) is not 'ä'.
    expect(await rows(store, null, 'a\u0308')).toEqual([]);
  });

  it('replay prefix - one that is not a string fails with GOSSIP_ERR_INVALID_ARGUMENT', async () => {
    const store = await openStore();
    await store.append('a', 1n, Buffer.from('x'));
    for (const prefix of [5, null, ['a'], { toString: () => 'a' }, Symbol('a')]) {
      const options = { prefix: prefix as unknown as string };
      await expectCode(drain(store.replay(null, options)), 'GOSSIP_ERR_INVALID_ARGUMENT');
      await expectCode(drain(store.replayBatches(null, options)), 'GOSSIP_ERR_INVALID_ARGUMENT');
      await expectCode(drain(store.replayRecords(null, options)), 'GOSSIP_ERR_INVALID_ARGUMENT');
    }
  });

  it('replay prefix - one with a lone surrogate fails with GOSSIP_ERR_ID_NOT_UTF8, not a match of its pair', async () => {
    const store = await openStore();
    await store.append('😀', 1n, Buffer.from('x'));
    await store.append('a😀', 2n, Buffer.from('y'));
    // '\ud83d' is the first unit of '😀': as strings compare, '😀' starts with it.
    for (const prefix of ['\ud83d', 'a\ud83d', '\ude00', 'a\ude00b']) {
      await expectCode(drain(store.replay(null, { prefix })), 'GOSSIP_ERR_ID_NOT_UTF8');
      await expectCode(drain(store.replayBatches(null, { prefix })), 'GOSSIP_ERR_ID_NOT_UTF8');
      await expectCode(drain(store.replayRecords(null, { prefix })), 'GOSSIP_ERR_ID_NOT_UTF8');
    }
    expect((await rows(store, null, '😀')).map(([id]) => id)).toEqual(['😀']);
    expect((await rows(store, null, 'a😀')).map(([id]) => id)).toEqual(['a😀']);
  });
});

describe('replay plan by prefix', () => {
  // 100 prefixes of 1000 ids: 'id/000/0000' .. 'id/099/0999'.
  const GROUPS = 100;
  const PER = 1000;
  const N = GROUPS * PER;
  const idOf = (g: number, i: number) => `id/${String(g).padStart(3, '0')}/${String(i).padStart(4, '0')}`;

  /** Every id once, in a shuffled order, each with a distinct ts (and so its own place in a ts order). */
  function entries(): { id: string; ts: bigint }[] {
    const ids: string[] = [];
    for (let g = 0; g < GROUPS; g++) for (let i = 0; i < PER; i++) ids.push(idOf(g, i));
    const rand = mulberry32(100_000);
    const tss = shuffle(
      Array.from({ length: N }, (_, k) => BigInt(k) * 7n - 300_000n),
      rand,
    );
    return shuffle(ids, rand).map((id, k) => ({ id, ts: tss[k] as bigint }));
  }

  /** The plan of `prefix` against every slot's id: the ids under it with ts >= since, in ts order. */
  function expectPlan(index: IndexTable, all: { id: string; ts: bigint }[], since: bigint | null, prefix: string) {
    const p = index.plan(since, prefix);
    const want = all
      .filter((e) => e.id.startsWith(prefix) && (since === null || e.ts >= since))
      .sort((x, y) => (x.ts < y.ts ? -1 : 1))
      .map((e) => index.slotOf(e.id));
    expect(Array.from(p.slots.subarray(0, p.n)), `plan(${since}, ${JSON.stringify(prefix)})`).toEqual(want);
    return p;
  }

  function expectAboutK(index: IndexTable, all: { id: string; ts: bigint }[]): void {
    expect(index.orderProblem()).toBeUndefined();
    for (const g of [0, 42, GROUPS - 1]) {
      const prefix = `id/${String(g).padStart(3, '0')}/`;
      const p = expectPlan(index, all, null, prefix);
      expect(p.n).toBe(PER);
      // About k entries: the prefix's ids and a binary search, not the n ids.
      expect(p.visited, `visited by plan(null, ${JSON.stringify(prefix)}) of ${N} ids`).toBeLessThanOrEqual(PER + 200);
      expect(p.visited).toBeGreaterThanOrEqual(PER);
      expect(expectPlan(index, all, 0n, prefix).visited).toBeLessThanOrEqual(PER + 200);
    }
    expect(expectPlan(index, all, null, 'id/042/0007').visited).toBeLessThanOrEqual(1 + 200);
    expect(expectPlan(index, all, null, 'id/1').n).toBe(0);
    expect(index.plan(null, '').visited, 'without a prefix, every slot').toBeGreaterThanOrEqual(N);
    expect(index.plan(null, '').n).toBe(N);
  }

  it('replay plan - a prefix holding k = 1000 of n = 100k ids visits at most k + 200 entries (kept as ids come)', () => {
    const all = entries();
    const index = new IndexTable();
    const replaced: Replaced = { seg: 0, size: 0 };
    for (const [k, e] of all.entries()) index.load(e.id, e.ts, 1, 16 + 40 * k, 40, false, replaced);
    expectAboutK(index, all);
  });

  it('replay plan - the same after a scan’s load, with the order sorted once, and after a restore', () => {
    const all = entries();
    const scanned = new IndexTable();
    const replaced: Replaced = { seg: 0, size: 0 };
    scanned.deferOrder();
    for (const [k, e] of all.entries()) scanned.load(e.id, e.ts, 1, 16 + 40 * k, 40, false, replaced);
    expect(() => scanned.plan(null, 'id/')).toThrow(/being rebuilt/);
    scanned.sortOrder();
    expectAboutK(scanned, all);

    const restored = new IndexTable();
    expect(restored.restore(scanned.columns(), scanned.newest())).toBe('ordered');
    expectAboutK(restored, all);
  });
});

describe('replay by prefix while slots change hands', () => {
  const replaced: Replaced = { seg: 0, size: 0 };
  const put = (index: IndexTable, id: string, ts: bigint, seg: number, off: number, tomb: boolean) => {
    const slot = index.tryPend(id, ts);
    expect(slot).toBeGreaterThanOrEqual(0);
    expect(index.commit(slot, ts, seg, off, 40, tomb, replaced)).toBe(true);
    return slot;
  };

  it('replay prefix - a planned slot dropped and taken by an id outside the prefix with the same ts is left out', () => {
    const index = new IndexTable();
    for (let i = 0; i < 10; i++) put(index, `a/${i}`, 10n, 1, 16 + 40 * i, true);
    for (let i = 0; i < 5; i++) put(index, `z/${i}`, 20n + BigInt(i), 1, 416 + 40 * i, false);
    const plan = index.plan(null, 'a/');
    expect(plan.n).toBe(10);
    const early = new ReplayWindow(16);
    const from = index.cut(plan, 0, 3 * 40, early);
    expect(early.count).toBe(3);

    // As a compaction drops the tombstones, and appends of new ids take their slots with the same ts.
    for (let i = 0; i < 10; i++) expect(index.drop(`a/${i}`, 1, 16 + 40 * i)).toBe(true);
    const taken = Array.from({ length: 10 }, (_, i) => put(index, `b/${i}`, 10n, 2, 16 + 40 * i, false));
    const planned = new Set(plan.slots.subarray(0, plan.n));
    for (const slot of taken) {
      // The ts check alone cannot tell: the slot holds a record with the planned ts.
      expect(planned.has(slot)).toBe(true);
      expect(index.ts(slot)).toBe(10n);
    }

    index.recheck(plan, early);
    expect(Array.from(early.size.subarray(0, early.count)), 'the window cut before: left out').toEqual([0, 0, 0]);
    const late = new ReplayWindow(16);
    expect(index.cut(plan, from, 1 << 20, late)).toBe(plan.n);
    expect(late.count, 'windows cut after: nothing').toBe(0);
    expect(index.plan(null, 'a/').n).toBe(0);
    expect(index.plan(null, 'b/').n).toBe(10);
    expect(index.orderProblem()).toBeUndefined();
  });

  it('replay prefix - a planned slot taken by another id under the prefix with the same ts still passes (its current record)', () => {
    const index = new IndexTable();
    const slot = put(index, 'a/old', 10n, 1, 16, true);
    put(index, 'a/keep', 11n, 1, 56, false);
    const plan = index.plan(null, 'a/');
    expect(index.drop('a/old', 1, 16)).toBe(true);
    expect(put(index, 'a/new', 10n, 2, 16, false)).toBe(slot);
    const w = new ReplayWindow(16);
    index.cut(plan, 0, 1 << 20, w);
    expect(w.count).toBe(2);
    expect([w.seg[0], w.off[0]], 'a/new’s record').toEqual([2, 16]);
  });

  it.each([
    'replayBatches',
    'replayRecords',
  ] as const)('replay prefix - %s: tombstones dropped mid-replay and their slots taken by other ids with the same ts: no id outside the prefix', async (how) => {
    const store = await openStore(OPTS);
    const tombs = Array.from({ length: 20 }, (_, i) => `a/t${i}`);
    await Promise.all(tombs.map((id) => store.append(id, 10n, Buffer.alloc(0))));
    const live = Array.from({ length: 10 }, (_, i) => `a/live${i}`);
    for (const [i, id] of live.entries()) await store.append(id, 100n + BigInt(i), Buffer.from(id));
    for (let i = 0; i < 10; i++) await store.append(`z/${i}`, 200n + BigInt(i), Buffer.from('z'));
    await store.roll();

    // One record per batch, so most windows are cut after the slots change hands.
    const options = { prefix: 'a/', batchBytes: 1 };
    const replay =
      how === 'replayBatches'
        ? (async function* () {
            for await (const b of store.replayBatches(null, options)) yield b.map((m) => m.id);
          })()
        : (async function* () {
            for await (const b of store.replayRecords(null, options)) yield batchRows(b).map(([id]) => id);
          })();
    const seen: string[] = [];
    const first = await replay.next();
    seen.push(...(first.value as string[]));

    const result = await store.compact();
    expect(result.tombstonesDropped).toBe(tombs.length);
    for (const id of tombs) expect(store.tsOf(id)).toBeUndefined();
    await Promise.all(tombs.map((_, i) => store.append(`b/${i}`, 10n, Buffer.from(`b/${i}`))));

    for await (const ids of replay) seen.push(...ids);
    expect(
      seen.filter((id) => !id.startsWith('a/')),
      'ids outside the prefix',
    ).toEqual([]);
    // The first tombstone was handed out before the drop; the live ids, moved by the compaction, all follow.
    expect(seen[0]).toMatch(/^a\/t\d+$/);
    expect(seen.slice(-live.length)).toEqual(live);
    expect(seen.length).toBeLessThanOrEqual(2 + live.length);
    expect((await rows(store, null, 'b/')).length).toBe(tombs.length);
  });

  it('replay prefix - random appends, tombstones and compactions between batches: only ids under the prefix, each once', async () => {
    const rand = mulberry32(0xabc);
    const store = await openStore({ ...OPTS, segmentBytes: 4096, fsync: 'never' });
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
    /** Every version ever appended, as "id ts data". */
    const history = new Set<string>();
    /** Ids appended to while a replay runs: their new records are live messages, not the replay's. */
    const touched = new Set<string>();
    let replaying = false;
    let next = 1000n;
    let newId = 0;
    const append = async (id: string, ts: bigint, tomb: boolean) => {
      const data = tomb ? Buffer.alloc(0) : Buffer.from(`${id}@${ts}`);
      const r = await store.append(id, ts, data);
      if (r.status !== 'accepted') return;
      history.add(`${id} ${ts} ${data.toString('hex')}`);
      if (replaying) touched.add(id);
    };
    // A few shared ts values: a dropped tombstone's slot is often retaken with its ts.
    const shared = [5n, 6n, 7n];
    const randomAppend = () => {
      const prefix = pick(['p/', 'q/', 'p', 'pp/']);
      const id = rand() < 0.5 ? `${prefix}${newId++}` : `${prefix}${Math.floor(rand() * 40)}`;
      const ts = rand() < 0.5 ? pick(shared) : next++;
      return append(id, ts, rand() < 0.4);
    };

    let drops = 0;
    let yielded = 0;
    for (let round = 0; round < 12; round++) {
      await Promise.all(Array.from({ length: 120 }, () => randomAppend()));
      await store.roll();
      const prefix = pick(['p/', 'q/', 'p']);
      const before = new Map<string, bigint>();
      for (const [id, ts] of await rows(store)) if (id.startsWith(prefix)) before.set(id, ts);
      touched.clear();
      replaying = true;
      const seen: StoredMessage[] = [];
      for await (const batch of store.replayBatches(null, { prefix, batchBytes: 64 })) {
        seen.push(...batch);
        const r = rand();
        if (r < 0.12) {
          const result = await store.compact();
          drops += result.tombstonesDropped;
          // New ids outside every prefix take the freed slots, each with one of the shared ts.
          const retakers = Array.from({ length: result.tombstonesDropped }, (_, i) =>
            append(`x/${newId++}`, shared[i % shared.length] as bigint, false),
          );
          await Promise.all(retakers);
          await store.roll();
        } else if (r < 0.6) {
          const ops = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => randomAppend());
          await Promise.all(ops);
        }
      }
      replaying = false;
      // Dropped (a tombstone past retention) or updated since the plan.
      for (const id of before.keys()) if (store.tsOf(id) !== before.get(id)) touched.add(id);
      const at = `round ${round}, prefix ${JSON.stringify(prefix)}`;
      expect(
        seen.filter((m) => !m.id.startsWith(prefix)).map((m) => m.id),
        `ids outside the prefix, ${at}`,
      ).toEqual([]);
      expect(new Set(seen.map((m) => m.id)).size, `each id once, ${at}`).toBe(seen.length);
      for (let k = 1; k < seen.length; k++) {
        expect((seen[k - 1] as StoredMessage).ts <= (seen[k] as StoredMessage).ts, `ts order, ${at}`).toBe(true);
      }
      for (const m of seen) {
        expect(history.has(`${m.id} ${m.ts} ${m.data.toString('hex')}`), `a version once appended, ${at}`).toBe(true);
      }
      const got = new Map(seen.map((m) => [m.id, m.ts]));
      for (const [id, ts] of before) {
        if (!touched.has(id)) expect(got.get(id), `${id}, untouched during the replay, ${at}`).toBe(ts);
      }
      yielded += seen.length;
    }
    expect(drops, 'tombstones were dropped during replays').toBeGreaterThan(0);
    expect(yielded).toBeGreaterThan(0);
  }, 60_000);
});
