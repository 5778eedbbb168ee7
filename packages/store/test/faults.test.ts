import { setImmediate as nextTurn } from 'node:timers/promises';
import { GossipError } from '@gossip/protocol';
import { mulberry32 } from '@gossip/protocol/testing';
import { type FsyncMode, Store, type StoreOptions } from '@gossip/store';
import { describe, expect, it } from 'vitest';
import { type Fault, type MutationRecord, SimDisk } from './sim-disk.js';

/*
 * Write failures (docs/STORAGE.md, rule S6), injected by the simulated disk at a chosen
 * mutating call: the batch in flight fails with GOSSIP_ERR_STORE_WRITE and none of it
 * becomes visible; reads go on; later appends go to a new segment once the disk takes
 * writes again; and after a reopen, or a crash of the disk, every acknowledged append is
 * there and no rejected one is.
 */

const DIR = '/data';
const LOCK = `${DIR}/gossip.lock`;
const NOW = 2_000_000_000_000_000_000n;

type Msg = [id: string, ts: bigint, data: string];

function open(disk: SimDisk, fsync: FsyncMode, extra: Partial<StoreOptions> = {}): Promise<Store> {
  // A background fsync every hour: under `interval` only the calls a test makes reach the disk.
  return Store.open({ dir: DIR, fs: disk, fsync, fsyncIntervalMs: 3_600_000, compactThreshold: 0, ...extra });
}

async function state(store: Store): Promise<Msg[]> {
  const out: Msg[] = [];
  for await (const m of store.replay(null)) out.push([m.id, m.ts, m.data.toString()]);
  return out;
}

/** The store holds exactly `expected`, through replay and through get. */
async function expectState(store: Store, expected: Msg[]): Promise<void> {
  const sorted = [...expected].sort((x, y) => (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
  expect(await state(store)).toEqual(sorted);
  for (const [id, ts, data] of expected) {
    const m = await store.get(id);
    expect([m?.id, m?.ts, m?.data.toString()]).toEqual([id, ts, data]);
  }
}

/** Reopens the disk as it is, then a crash of it (with a torn last write), and checks both hold `expected`. */
async function expectDurable(
  store: Store,
  disk: SimDisk,
  fsync: FsyncMode,
  expected: Msg[],
  extra: Partial<StoreOptions> = {},
): Promise<void> {
  const crashed = disk.crash({ tearLastWrite: true, rng: mulberry32(7) });
  // The lock file is never fsynced: a torn pid in it could name a live process (rule S7).
  crashed.remove(LOCK);
  await store.close();
  for (const d of [disk, crashed]) {
    const again = await open(d, fsync, extra);
    await expectState(again, expected);
    expect(again.stats().recovery.corruptions).toEqual([]);
    await again.close();
  }
}

const segments = (disk: SimDisk) => disk.list(DIR).filter((n) => n.endsWith('.seg'));
const call = (disk: SimDisk, n: number): MutationRecord | undefined => disk.log.find((r) => r.call === n);
const b = (s: string) => Buffer.from(s);

async function writeError(p: Promise<unknown>): Promise<GossipError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GossipError);
  expect(error).toMatchObject({ code: 'GOSSIP_ERR_STORE_WRITE' });
  return error as GossipError;
}

const WRITE_FAILURES: { name: string; faults: (n: number) => Fault[]; cause: string }[] = [
  { name: 'ENOSPC', faults: (n) => [{ call: n, kind: 'ENOSPC' }], cause: 'ENOSPC' },
  { name: 'EIO', faults: (n) => [{ call: n, kind: 'EIO' }], cause: 'EIO' },
  {
    name: 'a short write then ENOSPC',
    faults: (n) => [
      { call: n, kind: 'short' },
      { call: n + 1, kind: 'ENOSPC' },
    ],
    cause: 'ENOSPC',
  },
];

describe('faults', () => {
  for (const fsync of ['always', 'interval'] as const) {
    for (const failure of WRITE_FAILURES) {
      it(`faults - ${failure.name} writing a batch under ${fsync} rejects it, hides it, and the store goes on`, async () => {
        const disk = new SimDisk();
        const store = await open(disk, fsync);
        await Promise.all([store.append('a', 10n, b('a1')), store.append('b', 11n, b('b1'))]);
        const [oldSeg] = segments(disk);
        const oldPath = `${DIR}/${oldSeg}`;
        const ackedBytes = disk.contents(oldPath)?.length;

        const n = disk.mutations + 1;
        disk.faults.push(...failure.faults(n));
        const failed = [store.append('a', 20n, b('a2')), store.append('c', 21n, b('c1'))];
        for (const p of failed) {
          const error = await writeError(p);
          expect(error.cause).toMatchObject({ code: failure.cause });
        }
        expect(call(disk, n)).toMatchObject({ op: 'writev', path: oldPath });

        // None of the batch is visible; reads go on.
        expect(store.tsOf('a')).toBe(10n);
        expect(store.tsOf('c')).toBeUndefined();
        expect(await store.get('c')).toBeUndefined();
        await expectState(store, [
          ['a', 10n, 'a1'],
          ['b', 11n, 'b1'],
        ]);
        expect(store.stats().ioErrors).toBe(1);
        // The file is cut back to its last acknowledged byte.
        expect(disk.contents(oldPath)?.length).toBe(ackedBytes);

        // The disk works again: later appends succeed, in a new segment; a rejected append can be retried.
        expect(await store.append('a', 30n, b('a3'))).toMatchObject({ status: 'accepted' });
        expect(await store.append('c', 21n, b('c1-retry'))).toMatchObject({ status: 'accepted' });
        expect(await store.append('d', 31n, b('d1'))).toMatchObject({ status: 'accepted' });
        expect(segments(disk)).toHaveLength(2);
        expect(disk.contents(oldPath)?.length).toBe(ackedBytes);
        const expected: Msg[] = [
          ['b', 11n, 'b1'],
          ['c', 21n, 'c1-retry'],
          ['a', 30n, 'a3'],
          ['d', 31n, 'd1'],
        ];
        await expectState(store, expected);

        // Under `interval` an acked append is durable once flushed; under `always` at once.
        if (fsync === 'interval') await store.flush();
        await expectDurable(store, disk, fsync, expected);
      });
    }

    it(`faults - a short write is completed by the next writev and the batch is acked (${fsync})`, async () => {
      const disk = new SimDisk();
      const store = await open(disk, fsync);
      await store.append('a', 10n, b('a1'));
      const n = disk.mutations + 1;
      disk.faults.push({ call: n, kind: 'short' });
      const results = await Promise.all([store.append('a', 20n, b('a2')), store.append('c', 21n, b('c1'.repeat(50)))]);
      expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted']);
      expect([call(disk, n)?.op, call(disk, n + 1)?.op]).toEqual(['writev', 'writev']);
      expect(segments(disk)).toHaveLength(1);
      const expected: Msg[] = [
        ['a', 20n, 'a2'],
        ['c', 21n, 'c1'.repeat(50)],
      ];
      await expectState(store, expected);
      if (fsync === 'interval') await store.flush();
      await expectDurable(store, disk, fsync, expected);
    });

    it(`faults - batches queued behind a failed one move to a new segment (${fsync})`, async () => {
      const disk = new SimDisk();
      const store = await open(disk, fsync);
      await store.append('a', 10n, b('a1'));
      const n = disk.mutations + 1;
      const gate = disk.pauseAt(n);
      disk.faults.push({ call: n, kind: 'EIO' });
      const first = store.append('a', 20n, b('a2'));
      await gate.reached; // the writer is inside the writev of the first batch
      const second = [store.append('b', 21n, b('b1')), store.append('a', 22n, b('a3'))];
      await nextTurn(); // the store closes the second batch and queues it behind the first
      const third = store.append('c', 23n, b('c1'));
      gate.release();
      await writeError(first);
      expect((await Promise.all([...second, third])).map((r) => r.status)).toEqual([
        'accepted',
        'accepted',
        'accepted',
      ]);
      expect(call(disk, n)?.op).toBe('writev');
      expect(segments(disk)).toHaveLength(2);
      const expected: Msg[] = [
        ['b', 21n, 'b1'],
        ['a', 22n, 'a3'],
        ['c', 23n, 'c1'],
      ];
      await expectState(store, expected);
      if (fsync === 'interval') await store.flush();
      await expectDurable(store, disk, fsync, expected);
    });

    it(`faults - a failure creating the next segment rejects the batch and the next append retries (${fsync})`, async () => {
      const disk = new SimDisk();
      // Room for one record per segment: every append after the first of a segment rolls.
      const store = await open(disk, fsync, { segmentBytes: 100 });
      await store.append('a', 10n, b('a1'.repeat(20)));
      const before = segments(disk);
      const n = disk.mutations + 1;
      disk.faults.push({ call: n, kind: 'ENOSPC' });
      await writeError(store.append('b', 11n, b('b1'.repeat(20))));
      expect(call(disk, n)?.op).toBe(fsync === 'always' ? 'create' : 'sync'); // `interval` first fsyncs the full segment
      expect(segments(disk)).toEqual(before);
      await expectState(store, [['a', 10n, 'a1'.repeat(20)]]);

      expect(await store.append('b', 11n, b('b2'.repeat(20)))).toMatchObject({ status: 'accepted' });
      const expected: Msg[] = [
        ['a', 10n, 'a1'.repeat(20)],
        ['b', 11n, 'b2'.repeat(20)],
      ];
      await expectState(store, expected);
      if (fsync === 'interval') await store.flush();
      await expectDurable(store, disk, fsync, expected, { segmentBytes: 100 });
    });
  }

  it('faults - a failed fsync under always rejects the batch, and its appends are gone after a reopen or a crash', async () => {
    const disk = new SimDisk();
    const store = await open(disk, 'always');
    await store.append('a', 10n, b('a1'));
    const [oldSeg] = segments(disk);
    const ackedBytes = disk.contents(`${DIR}/${oldSeg}`)?.length;
    const n = disk.mutations + 2; // the batch's writev, then its fsync
    disk.faults.push({ call: n, kind: 'EIO' });
    const failed = [store.append('a', 20n, b('a2')), store.append('c', 21n, b('c1'))];
    for (const p of failed) expect((await writeError(p)).cause).toMatchObject({ code: 'EIO' });
    expect([call(disk, n - 1)?.op, call(disk, n)?.op]).toEqual(['writev', 'sync']);
    await expectState(store, [['a', 10n, 'a1']]);
    expect(disk.contents(`${DIR}/${oldSeg}`)?.length).toBe(ackedBytes);

    expect(await store.append('d', 30n, b('d1'))).toEqual({ status: 'accepted', durability: 'synced' });
    expect(segments(disk)).toHaveLength(2);
    await expectDurable(store, disk, 'always', [
      ['a', 10n, 'a1'],
      ['d', 30n, 'd1'],
    ]);
  });

  it('faults - a failed background fsync under interval seals the segment and keeps its acked appends', async () => {
    const disk = new SimDisk();
    const store = await open(disk, 'interval');
    expect(await store.append('a', 10n, b('a1'))).toEqual({ status: 'accepted', durability: 'written' });
    const n = disk.mutations + 1;
    disk.faults.push({ call: n, kind: 'EIO' });
    await store.flush(); // runs the background fsync now
    expect(call(disk, n)?.op).toBe('sync');
    expect(store.stats().ioErrors).toBe(1);
    await expectState(store, [['a', 10n, 'a1']]);

    expect(await store.append('b', 11n, b('b1'))).toMatchObject({ status: 'accepted' });
    expect(segments(disk)).toHaveLength(2);
    await store.flush();
    await expectDurable(store, disk, 'interval', [
      ['a', 10n, 'a1'],
      ['b', 11n, 'b1'],
    ]);
  });

  for (const how of ['flush', 'close'] as const) {
    it(`faults - acked appends of a segment sealed by a failed write are fsynced by ${how} (interval)`, async () => {
      const disk = new SimDisk();
      const store = await open(disk, 'interval');
      expect(await store.append('a', 10n, b('a1'))).toEqual({ status: 'accepted', durability: 'written' });
      disk.faults.push({ call: disk.mutations + 1, kind: 'ENOSPC' });
      await writeError(store.append('b', 11n, b('b1')));
      // No append follows: the sealed segment is still the newest file.
      if (how === 'flush') await store.flush();
      const crashed = disk.crash();
      crashed.remove(LOCK);
      await store.close();
      const after = how === 'flush' ? crashed : disk.crash();
      after.remove(LOCK);
      const again = await open(after, 'interval');
      await expectState(again, [['a', 10n, 'a1']]);
      await again.close();
    });
  }
});

describe('faults in compaction', () => {
  const compactOptions: Partial<StoreOptions> = {
    segmentBytes: 256,
    tombstoneRetentionMs: 0,
    now: () => NOW,
  };

  /** Appends over six ids across a dozen small segments; two ids end in a tombstone mid-log. */
  async function fill(store: Store): Promise<void> {
    for (let i = 0; i < 24; i++) {
      const id = i < 16 ? `k${i % 4}` : i < 18 ? `k${i - 15}` : `k${4 + (i % 2)}`;
      const data = i === 16 || i === 17 ? Buffer.alloc(0) : Buffer.alloc(40 + i, i);
      expect(await store.append(id, BigInt(1000 + i), data)).toMatchObject({ status: 'accepted' });
    }
  }

  /** The calls a compaction makes on a clean disk. */
  async function compactionCalls(): Promise<MutationRecord[]> {
    const disk = new SimDisk();
    const store = await open(disk, 'always', compactOptions);
    await fill(store);
    const from = disk.mutations;
    const result = await store.compact();
    expect(result.runs).toBeGreaterThan(0);
    expect(result.tombstonesDropped).toBeGreaterThan(0);
    await store.close();
    return disk.log.filter((r) => r.call > from);
  }

  /** The store holds `expected`, except tombstones compaction may drop below the horizon. */
  async function expectKept(store: Store, expected: Msg[]): Promise<void> {
    const got = await state(store);
    const kept = expected.filter((m) => got.some((x) => x[0] === m[0]));
    expect(got).toEqual(kept);
    for (const m of expected) {
      if (kept.includes(m)) continue;
      expect(m[2], `${m[0]} is gone but was not a tombstone`).toBe('');
      expect(store.horizon !== null && store.horizon >= m[1], `${m[0]}@${m[1]} was dropped above the horizon`).toBe(
        true,
      );
    }
  }

  const steps: { name: string; pick: (r: MutationRecord) => boolean }[] = [
    { name: 'creating the output', pick: (r) => r.op === 'create' && r.path.endsWith('.seg.tmp') },
    { name: 'writing the output', pick: (r) => r.op === 'writev' && r.path.endsWith('.seg.tmp') },
    { name: 'fsyncing the output', pick: (r) => r.op === 'sync' && r.path.endsWith('.seg.tmp') },
    { name: 'saving the horizon', pick: (r) => r.op === 'create' && r.path.endsWith('gossip.meta.tmp') },
    { name: 'renaming the output', pick: (r) => r.op === 'rename' && r.path.endsWith('.seg.tmp') },
    { name: 'fsyncing the folder after the rename', pick: (r) => r.op === 'syncDir' },
  ];

  for (const step of steps) {
    it(`faults - ENOSPC ${step.name} fails the compaction, loses nothing, and a retry compacts`, async () => {
      const calls = await compactionCalls();
      // The first such call after the output is created (the folder fsync: the first after the rename).
      const rename = calls.find((r) => r.op === 'rename' && r.path.endsWith('.seg.tmp'));
      const target = step.name.includes('folder')
        ? calls.find((r) => r.op === 'syncDir' && rename !== undefined && r.call > rename.call)
        : calls.find(step.pick);
      expect(target, 'the clean compaction makes this call').toBeDefined();
      const at = (target as MutationRecord).call;

      const disk = new SimDisk({ faultAt: { call: at, kind: 'ENOSPC' } });
      const store = await open(disk, 'always', compactOptions);
      await fill(store);
      const before = await state(store);
      expect(before.some((m) => m[2] === '')).toBe(true);
      await expect(store.compact()).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(call(disk, at)).toEqual(target);
      expect(await state(store)).toEqual(before);
      // Appends and reads go on.
      expect(await store.append('z', 5000n, b('z'))).toMatchObject({ status: 'accepted' });
      const withZ: Msg[] = [...before, ['z', 5000n, 'z']];
      expect(await state(store)).toEqual(withZ);

      // Nothing lost in a crash of the disk as the failure left it.
      const crashed = disk.crash({ tearLastWrite: true, rng: mulberry32(11) });
      crashed.remove(LOCK);
      const recovered = await open(crashed, 'always', compactOptions);
      await expectKept(recovered, withZ);
      await recovered.close();

      // A retry compacts, and what it leaves survives a reopen.
      const result = await store.compact();
      expect(result.runs).toBeGreaterThan(0);
      expect(disk.list(DIR).filter((n) => n.endsWith('.tmp'))).toEqual([]);
      await expectKept(store, withZ);
      const compacted = await state(store);
      expect(compacted.length).toBeLessThan(withZ.length);
      await store.close();
      const again = await open(disk, 'always', compactOptions);
      expect(await state(again)).toEqual(compacted);
      await again.close();
    });
  }
});

describe('lock', () => {
  it('lock - opening a folder another open store holds fails with GOSSIP_ERR_STORE_LOCKED', async () => {
    const disk = new SimDisk();
    const first = await open(disk, 'always');
    await first.append('a', 1n, b('a1'));
    const error = await Store.open({ dir: DIR, fs: disk }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GossipError);
    expect(error).toMatchObject({ code: 'GOSSIP_ERR_STORE_LOCKED' });
    // The refused open changed nothing: the holder goes on, and the folder opens once it closes.
    expect(await first.append('a', 2n, b('a2'))).toMatchObject({ status: 'accepted' });
    await first.close();
    const second = await open(disk, 'always');
    await expectState(second, [['a', 2n, 'a2']]);
    await second.close();
  });
});
