import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { GossipError, isEpoch, MAX_TS, MIN_TS } from '@gossip/protocol';
import { mulberry32 } from '@gossip/protocol/testing';
import {
  CHECKPOINT_FILE,
  LOCK_FILE,
  nodeFs,
  parseSegmentName,
  type RecoveryProgress,
  Store,
  type StoredMessage,
  type StoreFile,
  type StoreFs,
  scanSegment,
  segmentName,
} from '@gossip/store';
import { beforeEach, describe, expect, it } from 'vitest';
import { expectCode } from './expect-code.js';
import { leaveAsKilled } from './kill-folder.js';
import { tempStores } from './temp-stores.js';

const stores = tempStores('gossip-store-unit-');
const { openStore, opened } = stores;
let dir: string;
beforeEach(() => {
  dir = stores.dir();
});

async function segFiles(d = dir): Promise<string[]> {
  return (await readdir(d)).filter((n) => n.endsWith('.seg')).sort();
}

async function fileSizes(d = dir): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of await segFiles(d)) out[name] = (await stat(join(d, name))).size;
  return out;
}

interface ScannedRecord {
  id: string;
  ts: bigint;
  offset: number;
  size: number;
  dataLen: number;
}

/** Every valid record of a segment file, in file order. */
async function recordsOf(name: string, d = dir): Promise<ScannedRecord[]> {
  const file = await nodeFs.open(join(d, name), 'read');
  try {
    const out: ScannedRecord[] = [];
    await scanSegment(file, name, await file.size(), (id, ts, offset, size, dataLen) => {
      out.push({ id, ts, offset, size, dataLen });
    });
    return out;
  } finally {
    await file.close();
  }
}

/**
 * Flips every bit of one byte of a segment, and removes the index checkpoint so that
 * the next open scans: these tests are about what a scan does with a bad record (a
 * checkpoint's load meets it on read instead: checkpoint.test.ts).
 */
async function flipByte(path: string, at: number): Promise<void> {
  await rm(join(dirname(path), CHECKPOINT_FILE), { force: true });
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = (b[0] as number) ^ 0xff;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

async function collect(iter: AsyncIterable<StoredMessage>): Promise<[string, bigint, string][]> {
  const out: [string, bigint, string][] = [];
  for await (const m of iter) out.push([m.id, m.ts, m.data.toString()]);
  return out;
}

function shuffle<T>(items: T[], rand: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/**
 * The real filesystem, counting writes per file, tracking handles left open, and
 * calling `onOp` before every operation.
 */
function trackingFs(onOp: (op: string, path: string) => void = () => undefined): {
  fs: StoreFs;
  writes: Map<string, number>;
  open: Set<string>;
} {
  const writes = new Map<string, number>();
  const openHandles = new Set<string>();
  let next = 0;
  const fs: StoreFs = {
    async open(path, mode) {
      onOp('open', path);
      const f = await nodeFs.open(path, mode);
      const key = `${next++} ${path}`;
      openHandles.add(key);
      const name = path.slice(path.lastIndexOf('/') + 1);
      const wrapped: StoreFile = {
        read: (buffer, offset, length, position) => {
          onOp('read', path);
          return f.read(buffer, offset, length, position);
        },
        writev: (buffers, position) => {
          onOp('writev', path);
          writes.set(name, (writes.get(name) ?? 0) + 1);
          return f.writev(buffers, position);
        },
        sync: () => {
          onOp('sync', path);
          return f.sync();
        },
        truncate: (length) => {
          onOp('truncate', path);
          return f.truncate(length);
        },
        size: () => f.size(),
        stamp: () => f.stamp(),
        close: async () => {
          openHandles.delete(key);
          await f.close();
        },
      };
      return wrapped;
    },
    readdir: (path) => {
      onOp('readdir', path);
      return nodeFs.readdir(path);
    },
    mkdir: (path) => nodeFs.mkdir(path),
    rename: (from, to) => {
      onOp('rename', to);
      return nodeFs.rename(from, to);
    },
    unlink: (path) => {
      onOp('unlink', path);
      return nodeFs.unlink(path);
    },
    syncDir: (path) => {
      onOp('syncDir', path);
      return nodeFs.syncDir(path);
    },
  };
  return { fs, writes, open: openHandles };
}

const d = (s: string) => Buffer.from(s);
const EMPTY = Buffer.alloc(0);

describe('append validation', () => {
  it('append - an empty id is refused with GOSSIP_ERR_ID_EMPTY and nothing is written', async () => {
    const store = await openStore();
    await expectCode(store.append('', 1n, d('x')), 'GOSSIP_ERR_ID_EMPTY');
    await store.flush();
    expect(await segFiles()).toEqual([]);
    expect(store.stats()).toMatchObject({ ids: 0, appends: 0, bytes: 0 });
  });

  it('append - an id over 256 bytes is refused with GOSSIP_ERR_ID_TOO_LONG; 256 bytes is accepted', async () => {
    const store = await openStore();
    await store.append('base', 1n, d('x'));
    await store.flush();
    const before = await fileSizes();
    await expectCode(store.append('a'.repeat(257), 1n, d('x')), 'GOSSIP_ERR_ID_TOO_LONG');
    // 129 two-byte characters: 129 UTF-16 units but 258 bytes.
    await expectCode(store.append('é'.repeat(129), 1n, d('x')), 'GOSSIP_ERR_ID_TOO_LONG');
    await store.flush();
    expect(await fileSizes()).toEqual(before);
    expect(store.stats().ids).toBe(1);

    expect((await store.append('a'.repeat(256), 1n, d('ascii'))).status).toBe('accepted');
    expect((await store.append('é'.repeat(128), 1n, d('two-byte'))).status).toBe('accepted');
    expect((await store.get('a'.repeat(256)))?.data.toString()).toBe('ascii');
    expect((await store.get('é'.repeat(128)))?.data.toString()).toBe('two-byte');
  });

  it('append - an id with a lone surrogate is refused with GOSSIP_ERR_ID_NOT_UTF8', async () => {
    const store = await openStore();
    await expectCode(store.append('a\ud800b', 1n, d('x')), 'GOSSIP_ERR_ID_NOT_UTF8');
    await store.flush();
    expect(await segFiles()).toEqual([]);
  });

  it('append - data over maxDataBytes is refused with GOSSIP_ERR_DATA_TOO_LARGE; exactly the maximum is accepted', async () => {
    const store = await openStore({ maxDataBytes: 100 });
    expect(store.maxDataBytes).toBe(100);
    await store.append('base', 1n, d('x'));
    await store.flush();
    const before = await fileSizes();
    await expectCode(store.append('big', 1n, Buffer.alloc(101, 1)), 'GOSSIP_ERR_DATA_TOO_LARGE');
    await store.flush();
    expect(await fileSizes()).toEqual(before);
    expect(store.stats().ids).toBe(1);
    expect(await store.append('big', 1n, Buffer.alloc(100, 7))).toMatchObject({ status: 'accepted' });
    expect((await store.get('big'))?.data).toEqual(Buffer.alloc(100, 7));
  });

  it('append - data that is not bytes is refused with GOSSIP_ERR_INVALID_ARGUMENT', async () => {
    const store = await openStore();
    await expectCode(store.append('a', 1n, 'text' as unknown as Uint8Array), 'GOSSIP_ERR_INVALID_ARGUMENT');
  });

  it('append - a ts that is not a bigint or outside int64 is refused with GOSSIP_ERR_INVALID_ARGUMENT', async () => {
    const store = await openStore();
    await store.append('base', 1n, d('x'));
    await store.flush();
    const before = await fileSizes();
    for (const ts of [1, '1', null, undefined, 1.5, MAX_TS + 1n, MIN_TS - 1n, 2n ** 64n]) {
      await expectCode(store.append('a', ts as unknown as bigint, d('x')), 'GOSSIP_ERR_INVALID_ARGUMENT');
    }
    await store.flush();
    expect(await fileSizes()).toEqual(before);
    expect(store.tsOf('a')).toBeUndefined();

    expect((await store.append('min', MIN_TS, d('min'))).status).toBe('accepted');
    expect((await store.append('max', MAX_TS, d('max'))).status).toBe('accepted');
    await store.close();
    const again = await openStore();
    expect(again.tsOf('min')).toBe(MIN_TS);
    expect(again.tsOf('max')).toBe(MAX_TS);
  });

  it('append - after close is refused with GOSSIP_ERR_STORE_CLOSED, as are reads', async () => {
    const store = await openStore();
    await store.append('a', 1n, d('x'));
    await store.close();
    const before = await fileSizes();
    await expectCode(store.append('b', 2n, d('y')), 'GOSSIP_ERR_STORE_CLOSED');
    await expectCode(store.get('a'), 'GOSSIP_ERR_STORE_CLOSED');
    await expectCode(collect(store.replay(null)), 'GOSSIP_ERR_STORE_CLOSED');
    expect(() => store.compact()).toThrow(GossipError);
    await store.close(); // a second close is harmless
    expect(await fileSizes()).toEqual(before);
  });

  it('open - an unknown fsync mode is refused with GOSSIP_ERR_INVALID_ARGUMENT', async () => {
    await expectCode(Store.open({ dir, fsync: 'sometimes' as never }), 'GOSSIP_ERR_INVALID_ARGUMENT');
  });
});

describe('newest-ts rule', () => {
  it('lww - an equal or older ts is stale and writes nothing', async () => {
    const store = await openStore();
    expect(await store.append('a', 10n, d('ten'))).toMatchObject({ status: 'accepted' });
    await store.flush();
    const before = await fileSizes();
    expect(await store.append('a', 10n, d('equal'))).toEqual({ status: 'stale', durability: 'none' });
    expect(await store.append('a', 9n, d('older'))).toEqual({ status: 'stale', durability: 'none' });
    expect(await store.append('a', -10n, d('much older'))).toEqual({ status: 'stale', durability: 'none' });
    await store.flush();
    expect(await fileSizes()).toEqual(before);
    expect((await store.get('a'))?.data.toString()).toBe('ten');
    expect(store.stats()).toMatchObject({ appends: 1, staleAppends: 3 });
    expect(await store.append('a', 11n, d('eleven'))).toMatchObject({ status: 'accepted' });
    expect((await store.get('a'))?.data.toString()).toBe('eleven');
  });

  it('lww - a tombstone follows the same rule', async () => {
    const store = await openStore();
    await store.append('a', 10n, d('ten'));
    await store.flush();
    const before = await fileSizes();
    expect(await store.append('a', 10n, EMPTY)).toEqual({ status: 'stale', durability: 'none' });
    expect(await store.append('a', 5n, EMPTY)).toEqual({ status: 'stale', durability: 'none' });
    await store.flush();
    expect(await fileSizes()).toEqual(before);
    expect((await store.get('a'))?.data.toString()).toBe('ten');

    expect(await store.append('a', 20n, EMPTY)).toMatchObject({ status: 'accepted' });
    const tomb = await store.get('a');
    expect(tomb).toMatchObject({ id: 'a', ts: 20n });
    expect(tomb?.data.length).toBe(0);
    // A value older than the tombstone stays deleted; a newer one revives the id.
    expect(await store.append('a', 15n, d('late'))).toEqual({ status: 'stale', durability: 'none' });
    expect(await store.append('a', 20n, d('tie'))).toEqual({ status: 'stale', durability: 'none' });
    expect(await store.append('a', 21n, d('back'))).toMatchObject({ status: 'accepted' });
    expect((await store.get('a'))?.data.toString()).toBe('back');
  });

  it('lww - concurrent appends of one id in one tick: ts 5 then 4 → the first is accepted, the second stale', async () => {
    const store = await openStore();
    const first = store.append('x', 5n, d('five'));
    const second = store.append('x', 4n, d('four'));
    expect(await first).toMatchObject({ status: 'accepted' });
    expect(await second).toEqual({ status: 'stale', durability: 'none' });
    expect((await store.get('x'))?.data.toString()).toBe('five');
    await store.close();
    const again = await openStore();
    expect(again.tsOf('x')).toBe(5n);
  });

  it('lww - concurrent appends of one id in one tick: ts 4 then 5 → both accepted, 5 is the newest', async () => {
    const store = await openStore();
    const [first, second] = await Promise.all([store.append('x', 4n, d('four')), store.append('x', 5n, d('five'))]);
    expect(first.status).toBe('accepted');
    expect(second.status).toBe('accepted');
    expect((await store.get('x'))?.data.toString()).toBe('five');
    expect(await collect(store.replay(null))).toEqual([['x', 5n, 'five']]);
    await store.close();
    const again = await openStore();
    expect((await again.get('x'))?.data.toString()).toBe('five');
    expect(again.stats().ids).toBe(1);
  });

  it('lww - an append equal to a still-queued ts of its id is stale', async () => {
    const store = await openStore();
    const first = store.append('x', 7n, d('a'));
    const second = store.append('x', 7n, d('b'));
    const third = store.append('x', 6n, d('c'));
    expect((await first).status).toBe('accepted');
    expect((await second).status).toBe('stale');
    expect((await third).status).toBe('stale');
    expect((await store.get('x'))?.data.toString()).toBe('a');
  });
});

describe('durability and group commit', () => {
  it.each([
    ['always', 'synced'],
    ['interval', 'written'],
    ['never', 'written'],
  ] as const)('durability - %s reports %s', async (fsync, durability) => {
    const store = await openStore({ fsync });
    expect(store.fsyncMode).toBe(fsync);
    expect(await store.append('a', 1n, d('x'))).toEqual({ status: 'accepted', durability });
    expect(await store.append('a', 1n, d('x'))).toEqual({ status: 'stale', durability: 'none' });
  });

  it('durability - the default mode is interval', async () => {
    const store = await openStore();
    expect(store.fsyncMode).toBe('interval');
  });

  it('group commit - 1000 appends started in one tick all settle, in one write, and survive a reopen', async () => {
    const { fs, writes } = trackingFs();
    const store = await openStore({ fs, fsync: 'always' });
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) pending.push(store.append(`id-${i}`, BigInt(i + 1), d(`value-${i}`)));
    const results = await Promise.all(pending);
    expect(results.every((r) => (r as { status: string }).status === 'accepted')).toBe(true);
    const [name] = await segFiles();
    // The header, then one write for the whole batch.
    expect(writes.get(name as string)).toBe(2);
    await store.close();

    const again = await openStore();
    expect(again.stats().ids).toBe(1000);
    expect(again.stats().recovery.records).toBe(1000);
    for (const i of [0, 1, 499, 998, 999]) {
      expect(await again.get(`id-${i}`)).toMatchObject({ ts: BigInt(i + 1), data: d(`value-${i}`) });
    }
  });

  it('group commit - appends of later ticks join batches that follow, in call order', async () => {
    const store = await openStore({ fsync: 'always' });
    const all: Promise<unknown>[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 50; i++) all.push(store.append(`id-${i}`, BigInt(round * 100 + i + 1), d(`r${round}`)));
      await Promise.resolve();
    }
    await Promise.all(all);
    const seen = await collect(store.replay(null));
    expect(seen).toHaveLength(50);
    expect(seen.every(([, , v]) => v === 'r4')).toBe(true);
  });

  it('group commit - payloads of 16 KiB and more are written from the caller buffer intact', async () => {
    const store = await openStore();
    const big = Buffer.alloc(40_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    await Promise.all([
      store.append('small', 1n, d('s')),
      store.append('big', 2n, big),
      store.append('tail', 3n, d('t')),
    ]);
    expect((await store.get('big'))?.data.equals(big)).toBe(true);
    await store.close();
    const again = await openStore();
    expect((await again.get('big'))?.data.equals(big)).toBe(true);
    expect(await collect(again.replay(3n))).toEqual([['tail', 3n, 't']]);
  });
});

describe('segments', () => {
  it('segments - roll at segmentBytes and names sort in log order', async () => {
    // Each record: 19 bytes of overhead + 3 of id + 100 of data = 122; 8 fit in 1024 after the 16-byte header.
    const store = await openStore({ segmentBytes: 1024, compactThreshold: 0 });
    for (let i = 0; i < 40; i++) {
      await store.append(`r${String(i).padStart(2, '0')}`, BigInt(i + 1), Buffer.alloc(100, i));
    }
    await store.close();
    const names = await segFiles();
    expect(names).toHaveLength(5);
    const sizes = await fileSizes();
    const all: bigint[] = [];
    let lastSeq = 0;
    for (const name of names) {
      expect(sizes[name]).toBeLessThanOrEqual(1024);
      expect(sizes[name]).toBe(16 + 8 * 122);
      const range = parseSegmentName(name);
      expect(range?.gen).toBe(0);
      expect(range?.first).toBe(range?.last);
      expect(range?.first).toBeGreaterThan(lastSeq);
      lastSeq = range?.first as number;
      for (const r of await recordsOf(name)) all.push(r.ts);
    }
    // Reading the files in name order reads the log in append order.
    expect(all).toEqual(Array.from({ length: 40 }, (_, i) => BigInt(i + 1)));
    const again = await openStore({ segmentBytes: 1024 });
    expect(again.stats().segments).toBe(5);
  });

  it('segments - a record larger than segmentBytes gets a segment of its own', async () => {
    const store = await openStore({ segmentBytes: 1024, compactThreshold: 0 });
    await store.append('small-1', 1n, d('a'));
    await store.append('huge', 2n, Buffer.alloc(3000, 9));
    await store.append('small-2', 3n, d('b'));
    await store.close();
    const names = await segFiles();
    expect(names).toHaveLength(3);
    expect((await recordsOf(names[1] as string)).map((r) => r.id)).toEqual(['huge']);
    const again = await openStore({ segmentBytes: 1024 });
    expect((await again.get('huge'))?.data).toEqual(Buffer.alloc(3000, 9));
  });
});

describe('replay', () => {
  it('replay - ascending ts order across ids appended out of ts order', async () => {
    const store = await openStore();
    await store.append('a', 100n, d('A'));
    await store.append('b', 50n, d('B'));
    await store.append('c', 75n, d('C'));
    expect(await collect(store.replay(null))).toEqual([
      ['b', 50n, 'B'],
      ['c', 75n, 'C'],
      ['a', 100n, 'A'],
    ]);
    await store.close();
    const again = await openStore();
    expect((await collect(again.replay(null))).map(([id]) => id)).toEqual(['b', 'c', 'a']);
  });

  it('replay - since is inclusive', async () => {
    const store = await openStore();
    await store.append('a', 100n, d('A'));
    await store.append('b', 50n, d('B'));
    await store.append('c', 75n, d('C'));
    expect((await collect(store.replay(75n))).map(([id]) => id)).toEqual(['c', 'a']);
    expect((await collect(store.replay(76n))).map(([id]) => id)).toEqual(['a']);
    expect((await collect(store.replay(100n))).map(([id]) => id)).toEqual(['a']);
    expect(await collect(store.replay(101n))).toEqual([]);
    expect((await collect(store.replay(MIN_TS))).map(([id]) => id)).toEqual(['b', 'c', 'a']);
  });

  it('replay - tombstones are included, with empty data', async () => {
    const store = await openStore();
    await store.append('a', 100n, d('A'));
    await store.append('b', 50n, d('B'));
    await store.append('c', 75n, d('C'));
    await store.append('b', 80n, EMPTY);
    expect(await collect(store.replay(null))).toEqual([
      ['c', 75n, 'C'],
      ['b', 80n, ''],
      ['a', 100n, 'A'],
    ]);
    expect(await collect(store.replay(80n))).toEqual([
      ['b', 80n, ''],
      ['a', 100n, 'A'],
    ]);
  });

  it('replay - replayBatches yields the same messages in batches of bounded size', async () => {
    const store = await openStore();
    for (let i = 0; i < 200; i++) await store.append(`id-${i}`, BigInt(200 - i), Buffer.alloc(50, i));
    const batches: StoredMessage[][] = [];
    for await (const b of store.replayBatches(null, { batchBytes: 500 })) batches.push(b);
    expect(batches.length).toBeGreaterThan(10);
    const flat = batches.flat();
    expect(flat.map((m) => m.ts)).toEqual(Array.from({ length: 200 }, (_, i) => BigInt(i + 1)));
  });

  it('replay - an aborted signal stops it', async () => {
    const store = await openStore();
    for (let i = 0; i < 20; i++) await store.append(`id-${i}`, BigInt(i), d('x'));
    const ac = new AbortController();
    ac.abort();
    await expect(collect(store.replay(null, { signal: ac.signal }))).rejects.toThrow();
  });

  const distributions: [string, (rand: () => number, i: number) => bigint][] = [
    [
      'anywhere in int64, negatives included',
      (rand, i) => {
        if (i === 0) return MIN_TS;
        if (i === 1) return MAX_TS;
        if (i < 5) return BigInt(i - 3); // -1, 0, 1
        const hi = BigInt(Math.floor(rand() * 2 ** 32));
        const lo = BigInt(Math.floor(rand() * 2 ** 32));
        return BigInt.asIntN(64, (hi << 32n) | lo);
      },
    ],
    [
      'differing only in the low 16 bits',
      (rand) => 1_700_000_000_000_000_000n + BigInt(Math.floor(rand() * 65536)) - 32768n,
    ],
    [
      'differing only in the low bits, all negative',
      (rand) => -1_700_000_000_000_000_000n + BigInt(Math.floor(rand() * 300_000)),
    ],
    [
      'differing only in the high 16 bits',
      (rand) => BigInt.asIntN(64, (BigInt(Math.floor(rand() * 65536)) << 48n) | 0x1234_5678_9abcn),
    ],
    ['all equal', () => -42n],
  ];

  it.each(distributions)('replay - more than 3000 ids sort by signed ts (radix path): %s', async (_name, make) => {
    const rand = mulberry32(0x5eed);
    const n = 3500;
    const store = await openStore();
    const entries = Array.from({ length: n }, (_, i) => ({ id: `id-${i}`, ts: make(rand, i) }));
    await Promise.all(shuffle([...entries], rand).map((e) => store.append(e.id, e.ts, d(e.ts.toString()))));
    const sorted = [...entries].sort((x, y) => (x.ts < y.ts ? -1 : x.ts > y.ts ? 1 : 0));
    const byId = (x: { id: string }, y: { id: string }) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);

    const seen = await collect(store.replay(null));
    expect(seen.map(([, ts]) => ts)).toEqual(sorted.map((e) => e.ts));
    expect(seen.every(([, ts, v]) => v === ts.toString())).toBe(true);
    expect(seen.map(([id, ts]) => ({ id, ts })).sort(byId)).toEqual([...entries].sort(byId));

    const since = (sorted[Math.floor(n / 3)] as (typeof sorted)[number]).ts;
    const tail = await collect(store.replay(since));
    expect(tail.map(([, ts]) => ts)).toEqual(sorted.filter((e) => e.ts >= since).map((e) => e.ts));
  });

  it('replay - appends during a replay: no crash, nothing torn, only persisted versions, ascending', async () => {
    const store = await openStore({ segmentBytes: 16 * 1024, compactThreshold: 0 });
    const n = 3000;
    const versions = new Map<string, Map<bigint, string>>();
    const record = (id: string, ts: bigint, v: string) => {
      let m = versions.get(id);
      if (!m) versions.set(id, (m = new Map()));
      m.set(ts, v);
    };
    await Promise.all(
      Array.from({ length: n }, (_, i) => {
        record(`k${i}`, BigInt(i + 1), `v1:${i}`);
        return store.append(`k${i}`, BigInt(i + 1), d(`v1:${i}`));
      }),
    );

    const updated = new Set<string>();
    const seen: { id: string; ts: bigint; v: string }[] = [];
    let ts = 10_000n;
    let batches = 0;
    const inFlight: Promise<unknown>[] = [];
    for await (const batch of store.replayBatches(null, { batchBytes: 256 })) {
      for (const m of batch) seen.push({ id: m.id, ts: m.ts, v: m.data.toString() });
      batches++;
      if (batches % 10 !== 1) continue;
      // Update ids the replay has not reached yet: some written before the next batch, some still queued.
      const reached = seen.length;
      for (let j = 0; j < 20; j++) {
        const i = Math.min(n - 1, reached + 40 + ((batches * 7 + j * 13) % (n - reached + 1)));
        const id = `k${i}`;
        ts++;
        record(id, ts, `v2:${i}:${ts}`);
        updated.add(id);
        const p = store.append(id, ts, d(`v2:${i}:${ts}`));
        if (j % 2 === 0) await p;
        else inFlight.push(p);
      }
    }
    await Promise.all(inFlight);
    expect(batches).toBeGreaterThan(50);

    for (let k = 1; k < seen.length; k++) {
      expect((seen[k - 1] as (typeof seen)[number]).ts <= (seen[k] as (typeof seen)[number]).ts).toBe(true);
    }
    expect(new Set(seen.map((m) => m.id)).size).toBe(seen.length);
    for (const m of seen) expect(versions.get(m.id)?.get(m.ts), `${m.id}@${m.ts}`).toBe(m.v);
    // A value written after the replay started reaches subscribers live, not in the replay.
    for (const m of seen) expect(m.v.startsWith('v1:'), `${m.id}@${m.ts}`).toBe(true);
    // An id nobody touched during the replay is never left out.
    const seenIds = new Set(seen.map((m) => m.id));
    for (let i = 0; i < n; i++) if (!updated.has(`k${i}`)) expect(seenIds.has(`k${i}`), `k${i}`).toBe(true);

    // Afterwards every id has its newest version.
    const after = await collect(store.replay(null));
    expect(after).toHaveLength(n);
    for (const [id, t, v] of after) {
      const newest = [...(versions.get(id)?.keys() ?? [])].reduce((a, b) => (b > a ? b : a));
      expect(t).toBe(newest);
      expect(v).toBe(versions.get(id)?.get(newest));
    }
  });

  it('replay - compactions during a replay move records without losing or tearing any', async () => {
    const store = await openStore({ segmentBytes: 4096, compactThreshold: 0 });
    const n = 2000;
    const current = new Map<string, [bigint, string]>();
    for (let i = 0; i < n; i++) {
      current.set(`k${i}`, [BigInt(i + 1), `v1:${i}`]);
      await store.append(`k${i}`, BigInt(i + 1), d(`v1:${i}`));
    }
    // Supersede half, so the early segments are mostly dead.
    for (let i = 0; i < n; i += 2) {
      current.set(`k${i}`, [BigInt(n + i + 1), `v2:${i}`]);
      await store.append(`k${i}`, BigInt(n + i + 1), d(`v2:${i}`));
    }
    const before = store.stats();
    const atStart = new Map(current);
    const seen: [string, bigint, string][] = [];
    const results: Awaited<ReturnType<Store['compact']>>[] = [];
    let running: Promise<void> | undefined;
    let batches = 0;
    let ts = 10n * BigInt(n);
    for await (const batch of store.replayBatches(null, { batchBytes: 256 })) {
      for (const m of batch) seen.push([m.id, m.ts, m.data.toString()]);
      batches++;
      if (batches === 1) {
        // Every record the replay has yet to read moves under it.
        results.push(await store.compact());
      } else if (batches === 20) {
        // Supersede ids already replayed, then compact while the replay goes on.
        for (const [id] of seen) {
          ts++;
          current.set(id, [ts, `v3:${id}`]);
          await store.append(id, ts, d(`v3:${id}`));
        }
        running = store.compact().then((r) => {
          results.push(r);
        });
      }
    }
    await running;
    expect(batches).toBeGreaterThan(40);
    expect(results).toHaveLength(2);
    expect(results.every((r) => r.runs > 0)).toBe(true);
    expect(store.stats().segments).toBeLessThan(before.segments);
    expect(seen).toHaveLength(n);
    for (let k = 1; k < seen.length; k++) {
      expect((seen[k - 1] as (typeof seen)[number])[1] < (seen[k] as (typeof seen)[number])[1]).toBe(true);
    }
    for (const [id, t, v] of seen) expect([t, v]).toEqual(atStart.get(id));
    const after = await collect(store.replay(null));
    expect(after).toHaveLength(n);
    for (const [id, t, v] of after) expect([t, v]).toEqual(current.get(id));
  });
});

describe('recovery', () => {
  /** Appends each (id, ts) with a value of 80 bytes derived from both, one append at a time. */
  async function fill(store: Store, items: [string, bigint][]): Promise<void> {
    for (const [id, ts] of items) await store.append(id, ts, d(`${id}@${ts}:`.padEnd(80, '.')));
  }
  const val = (id: string, ts: bigint) => `${id}@${ts}:`.padEnd(80, '.');

  it('recovery - a byte flipped in the middle of the newest segment: that record is skipped and reported, later ones are served', async () => {
    const store = await openStore();
    const items: [string, bigint][] = [['victim', 1n]];
    for (let i = 0; i < 5; i++) items.push([`before-${i}`, BigInt(10 + i)]);
    items.push(['victim', 20n]);
    for (let i = 0; i < 5; i++) items.push([`after-${i}`, BigInt(30 + i)]);
    await fill(store, items);
    await store.close();

    const [name] = await segFiles();
    const recs = await recordsOf(name as string);
    const hit = recs.find((r) => r.id === 'victim' && r.ts === 20n) as ScannedRecord;
    await flipByte(join(dir, name as string), hit.offset + hit.size - 10);

    const again = await openStore();
    const { recovery } = again.stats();
    expect(recovery.corruptions).toEqual([{ file: name, offset: hit.offset, bytesLost: hit.size }]);
    expect(recovery.truncatedBytes).toBe(0);
    // The corrupted version is gone; the older one is served, never the flipped bytes.
    expect(await again.get('victim')).toMatchObject({ ts: 1n, data: d(val('victim', 1n)) });
    for (let i = 0; i < 5; i++) {
      expect((await again.get(`after-${i}`))?.data.toString()).toBe(val(`after-${i}`, BigInt(30 + i)));
      expect((await again.get(`before-${i}`))?.data.toString()).toBe(val(`before-${i}`, BigInt(10 + i)));
    }
    const seen = await collect(again.replay(null));
    expect(seen[0]).toEqual(['victim', 1n, val('victim', 1n)]);
    for (const [id, ts, v] of seen) expect(v).toBe(val(id, ts));
    expect(seen).toHaveLength(11);
    // Appends go on after the surviving records, and survive a reopen.
    expect((await again.append('victim', 40n, d('new'))).status).toBe('accepted');
    await again.close();
    const third = await openStore();
    expect((await third.get('victim'))?.data.toString()).toBe('new');
    expect(third.stats().recovery.corruptions).toHaveLength(1); // still on disk, still reported
  });

  it('recovery - bytes flipped in an older segment: reported with file and offset; ids fall back to older versions', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    const items: [string, bigint][] = [['victim', 1n]];
    let ts = 10n;
    for (let i = 0; i < 40; i++) items.push([`k${i}`, ts++]);
    await fill(store, items);
    await store.close();
    expect((await segFiles()).length).toBeGreaterThanOrEqual(3);

    const store2 = await openStore(opts);
    await fill(store2, [
      ['m0', 100n],
      ['victim', 101n],
      ['m1', 102n],
      ['solo', 103n],
      ['m2', 104n],
    ]);
    for (let i = 0; i < 20; i++) await store2.append(`z${i}`, BigInt(200 + i), d(val(`z${i}`, BigInt(200 + i))));
    await store2.close();

    const all = await segFiles();
    const newest = all[all.length - 1] as string;
    const hits: { file: string; rec: ScannedRecord; at: number }[] = [];
    for (const name of all) {
      for (const r of await recordsOf(name)) {
        if (r.id === 'victim' && r.ts === 101n) hits.push({ file: name, rec: r, at: 12 }); // in the ts field
        if (r.id === 'solo') hits.push({ file: name, rec: r, at: 1 }); // in the crc
      }
    }
    expect(hits).toHaveLength(2);
    for (const h of hits) {
      expect(h.file, 'an older segment').not.toBe(newest);
      await flipByte(join(dir, h.file), h.rec.offset + h.at);
    }

    const again = await openStore(opts);
    const { recovery } = again.stats();
    expect(recovery.corruptions).toEqual(
      hits.map((h) => ({ file: h.file, offset: h.rec.offset, bytesLost: h.rec.size })),
    );
    expect(recovery.truncatedBytes).toBe(0);
    expect(await again.get('victim')).toMatchObject({ ts: 1n, data: d(val('victim', 1n)) });
    expect(await again.get('solo')).toBeUndefined();
    expect(again.tsOf('solo')).toBeUndefined();
    for (const id of ['m0', 'm1', 'm2']) expect(await again.get(id)).toBeDefined();
    const seen = await collect(again.replay(null));
    expect(seen.map(([id]) => id)).not.toContain('solo');
    for (const [id, ts, v] of seen) expect(v).toBe(val(id, ts));
    expect(again.stats().ids).toBe(1 + 40 + 3 + 20);
  });

  it('recovery - a torn tail of the newest segment is truncated; earlier records are served', async () => {
    const store = await openStore({ segmentBytes: 1024 });
    const items: [string, bigint][] = [['last', 1n]];
    for (let i = 0; i < 20; i++) items.push([`k${i}`, BigInt(10 + i)]);
    await fill(store, items);
    await store.close();
    // Appended after the clean close, then killed: a write no clean close vouched for (S8).
    const reopened = await openStore({ segmentBytes: 1024 });
    await fill(reopened, [['last', 50n]]);
    await leaveAsKilled(reopened, dir);

    const names = await segFiles();
    const newest = names[names.length - 1] as string;
    const recs = await recordsOf(newest);
    const lastRec = recs[recs.length - 1] as ScannedRecord;
    expect(lastRec).toMatchObject({ id: 'last', ts: 50n });
    const path = join(dir, newest);
    const size = (await stat(path)).size;
    await truncate(path, size - 3);

    const again = await openStore({ segmentBytes: 1024 });
    const { recovery } = again.stats();
    expect(recovery.truncatedBytes).toBe(lastRec.size - 3);
    expect(recovery.corruptions).toEqual([]);
    expect((await stat(path)).size).toBe(lastRec.offset);
    expect(await again.get('last')).toMatchObject({ ts: 1n, data: d(val('last', 1n)) });
    for (let i = 0; i < 20; i++) expect((await again.get(`k${i}`))?.ts).toBe(BigInt(10 + i));
    expect(again.stats().ids).toBe(21);
    // Appending after the truncation leaves a clean log.
    await again.append('last', 60n, d('sixty'));
    await again.close();
    const third = await openStore({ segmentBytes: 1024 });
    expect(third.stats().recovery).toMatchObject({ truncatedBytes: 0, corruptions: [] });
    expect((await third.get('last'))?.data.toString()).toBe('sixty');
  });

  it('recovery - garbage after the newest segment last record is truncated', async () => {
    const store = await openStore();
    const items: [string, bigint][] = [];
    for (let i = 0; i < 10; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    const [name] = await segFiles();
    const path = join(dir, name as string);
    const size = (await stat(path)).size;
    const garbage = Buffer.alloc(37);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 97 + 13) & 0xff;
    await writeFile(path, garbage, { flag: 'a' });

    const again = await openStore();
    expect(again.stats().recovery).toMatchObject({ truncatedBytes: 37, corruptions: [] });
    expect((await stat(path)).size).toBe(size);
    expect(await collect(again.replay(null))).toEqual(items.map(([id, ts]) => [id, ts, val(id, ts)]));
  });

  it('recovery - a copy of a valid record appended with one byte changed is a torn tail, never served', async () => {
    const store = await openStore();
    await fill(store, [
      ['a', 1n],
      ['b', 2n],
    ]);
    await store.close();
    const [name] = await segFiles();
    const path = join(dir, name as string);
    const bytes = await readFile(path);
    const recs = await recordsOf(name as string);
    const b = recs[1] as ScannedRecord;
    const copy = Buffer.from(bytes.subarray(b.offset, b.offset + b.size));
    copy.writeBigInt64BE(99n, 9); // a newer ts, under the old crc
    await writeFile(path, copy, { flag: 'a' });

    const again = await openStore();
    expect(again.stats().recovery.truncatedBytes).toBe(b.size);
    expect(again.tsOf('b')).toBe(2n);
  });

  it("recovery - corruption 'fail': open rejects with GOSSIP_ERR_STORE_CORRUPT naming the file and offset", async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    const items: [string, bigint][] = [];
    for (let i = 0; i < 30; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    const names = await segFiles();
    const older = names[1] as string;
    const rec = (await recordsOf(older))[2] as ScannedRecord;
    await flipByte(join(dir, older), rec.offset + rec.size - 1);

    const error = await Store.open({ dir, ...opts, corruption: 'fail' }).then(
      () => undefined,
      (e: unknown) => e as GossipError,
    );
    expect(error).toBeInstanceOf(GossipError);
    expect(error?.code).toBe('GOSSIP_ERR_STORE_CORRUPT');
    expect(error?.message).toContain(older);
    expect(error?.message).toContain(`offset ${rec.offset}`);
    // The failed open released the lock: a skipping open works.
    const again = await openStore(opts);
    expect(again.stats().recovery.corruptions).toEqual([{ file: older, offset: rec.offset, bytesLost: rec.size }]);
  });

  it("recovery - corruption 'fail' refuses a flip in the middle of the newest segment too, but not a torn tail", async () => {
    const store = await openStore();
    const items: [string, bigint][] = [];
    for (let i = 0; i < 9; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    // The last record is appended after the clean close, then the process is killed.
    const reopened = await openStore();
    await fill(reopened, [['k9', 10n]]);
    await leaveAsKilled(reopened, dir);
    const [name] = await segFiles();
    const path = join(dir, name as string);
    const recs = await recordsOf(name as string);
    const size = (await stat(path)).size;
    await truncate(path, size - 5);
    const torn = await openStore({ corruption: 'fail' });
    expect(torn.stats().recovery.truncatedBytes).toBe((recs[9] as ScannedRecord).size - 5);
    await torn.close();

    const mid = recs[4] as ScannedRecord;
    await flipByte(path, mid.offset + 20);
    const error = await Store.open({ dir, corruption: 'fail' }).then(
      () => undefined,
      (e: unknown) => e as GossipError,
    );
    expect(error?.code).toBe('GOSSIP_ERR_STORE_CORRUPT');
    expect(error?.message).toContain(name);
    expect(error?.message).toContain(`offset ${mid.offset}`);
  });

  it("recovery - corruption 'fail': a refused open closes every file it opened", async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    const items: [string, bigint][] = [];
    for (let i = 0; i < 30; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    const names = await segFiles();
    const rec = (await recordsOf(names[1] as string))[2] as ScannedRecord;
    await flipByte(join(dir, names[1] as string), rec.offset + rec.size - 1);

    const tracking = trackingFs();
    await expectCode(Store.open({ dir, ...opts, fs: tracking.fs, corruption: 'fail' }), 'GOSSIP_ERR_STORE_CORRUPT');
    expect([...tracking.open]).toEqual([]);
  });

  it('recovery - an older segment with a bad header is reported at offset 0, kept on disk, and its ids fall back', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    await fill(store, [['x', 1n]]);
    const items: [string, bigint][] = [];
    for (let i = 0; i < 30; i++) items.push([`k${i}`, BigInt(10 + i)]);
    await fill(store, items);
    await fill(store, [['x', 100n]]);
    for (let i = 0; i < 20; i++) await fill(store, [[`z${i}`, BigInt(200 + i)]]);
    await store.close();
    const names = await segFiles();
    const xAt = [];
    for (const name of names) if ((await recordsOf(name)).some((r) => r.id === 'x' && r.ts === 100n)) xAt.push(name);
    const bad = xAt[0] as string;
    expect(bad).not.toBe(names[0]);
    expect(bad).not.toBe(names[names.length - 1]);
    const lost = (await recordsOf(bad)).map((r) => r.id).filter((id) => id !== 'x');
    const badSize = (await stat(join(dir, bad))).size;
    await flipByte(join(dir, bad), 1); // the magic

    const error = await Store.open({ dir, ...opts, corruption: 'fail' }).then(
      () => undefined,
      (e: unknown) => e as GossipError,
    );
    expect(error?.code).toBe('GOSSIP_ERR_STORE_CORRUPT');
    expect(error?.message).toContain(bad);

    const again = await openStore(opts);
    expect.soft(again.stats().recovery.corruptions).toEqual([{ file: bad, offset: 0, bytesLost: badSize }]);
    expect(await again.get('x')).toMatchObject({ ts: 1n, data: d(val('x', 1n)) });
    for (const id of lost) expect(await again.get(id)).toBeUndefined();
    for (const [id, ts, v] of await collect(again.replay(null))) expect(v).toBe(val(id, ts));
    // Never compacted away: kept for an operator to inspect.
    await again.append('after', 1000n, d('a'));
    await again.compact();
    expect(await segFiles()).toContain(bad);
  });

  it('recovery - a newest segment with a bad header is reported once, kept intact on disk, and appends move on', async () => {
    const store = await openStore();
    const items: [string, bigint][] = [];
    for (let i = 0; i < 10; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    const [name] = await segFiles();
    const path = join(dir, name as string);
    await flipByte(path, 0); // the magic
    const bytes = await readFile(path);

    const again = await openStore();
    expect.soft(again.stats().recovery).toMatchObject({
      corruptions: [{ file: name, offset: 0, bytesLost: bytes.length }],
      truncatedBytes: 0,
    });
    expect(again.stats().ids).toBe(0);
    // Kept for an operator to inspect: not truncated, not rewritten.
    expect.soft((await readFile(path)).length, 'the file is not truncated').toBe(bytes.length);
    expect((await again.append('new', 100n, d('n'))).status).toBe('accepted');
    await again.close();
    expect((await readFile(path)).equals(bytes)).toBe(true);
    const third = await openStore();
    expect(third.stats().recovery.corruptions).toEqual([{ file: name, offset: 0, bytesLost: bytes.length }]);
    expect((await third.get('new'))?.data.toString()).toBe('n');
  });

  it('recovery - a newest segment shorter than its header is deleted', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    const items: [string, bigint][] = [];
    for (let i = 0; i < 20; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    const names = await segFiles();
    const newest = names[names.length - 1] as string;
    const survivors = (await collect((await openStore(opts)).replay(null))).length;
    await opened.pop()?.close();
    // A crash between creating the next segment and its header's fsync.
    const next = (parseSegmentName(newest)?.last ?? 0) + 1;
    const nextName = segmentName(next, next, 0);
    await writeFile(join(dir, nextName), Buffer.from('GSP'));

    const again = await openStore(opts);
    expect(await segFiles()).toEqual(names);
    expect(again.stats().recovery.corruptions).toEqual([]);
    expect(await collect(again.replay(null))).toHaveLength(survivors);
    expect(survivors).toBe(20);
    await again.append('new', 100n, d('n'));
    await again.close();
    const third = await openStore(opts);
    expect((await third.get('new'))?.data.toString()).toBe('n');
    expect(third.stats().ids).toBe(21);
  });

  it('get - a record corrupted on disk while the store is open is refused with GOSSIP_ERR_STORE_CORRUPT, never served', async () => {
    const store = await openStore();
    await fill(store, [
      ['a', 1n],
      ['b', 2n],
      ['c', 3n],
    ]);
    await store.flush();
    const [name] = await segFiles();
    const b = (await recordsOf(name as string))[1] as ScannedRecord;
    await flipByte(join(dir, name as string), b.offset + b.size - 1);
    await expectCode(store.get('b'), 'GOSSIP_ERR_STORE_CORRUPT');
    expect(await collect(store.replay(null))).toEqual([
      ['a', 1n, val('a', 1n)],
      ['c', 3n, val('c', 3n)],
    ]);
  });

  it('recovery - onRecoveryProgress is called once per segment, in log order', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    const items: [string, bigint][] = [];
    for (let i = 0; i < 45; i++) items.push([`k${i}`, BigInt(i + 1)]);
    await fill(store, items);
    await store.close();
    const names = await segFiles();
    expect(names.length).toBeGreaterThanOrEqual(4);
    await rm(join(dir, CHECKPOINT_FILE)); // a scan, not the checkpoint's load

    const calls: RecoveryProgress[] = [];
    const again = await openStore({ ...opts, onRecoveryProgress: (p) => calls.push({ ...p }) });
    expect(calls.map((c) => c.segment)).toEqual(names);
    expect(calls.map((c) => c.segmentsDone)).toEqual(names.map((_, i) => i + 1));
    expect(calls.every((c) => c.segments === names.length)).toBe(true);
    for (let i = 1; i < calls.length; i++) {
      expect((calls[i] as RecoveryProgress).records).toBeGreaterThan((calls[i - 1] as RecoveryProgress).records);
    }
    expect(calls[calls.length - 1]?.records).toBe(45);
    expect(again.stats().recovery).toMatchObject({ segments: names.length, records: 45 });
  });

  it('recovery - a *.tmp file and segments replaced by a compaction output are removed on open', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0 };
    const store = await openStore(opts);
    for (let i = 0; i < 60; i++) await store.append(`k${i % 12}`, BigInt(i + 1), d(val(`k${i % 12}`, BigInt(i + 1))));
    await store.append('k3', 100n, EMPTY);
    for (let i = 0; i < 10; i++) await store.append(`z${i}`, BigInt(200 + i), d(val(`z${i}`, BigInt(200 + i))));
    await store.close();
    const saved = new Map<string, Buffer>();
    for (const name of await segFiles()) saved.set(name, await readFile(join(dir, name)));

    const compacting = await openStore(opts);
    const result = await compacting.compact();
    expect(result.runs).toBeGreaterThan(0);
    const want = await collect(compacting.replay(null));
    const wantIds = compacting.stats().ids;
    await compacting.close();
    const afterCompaction = await segFiles();
    const inputs = [...saved.keys()].filter((n) => !afterCompaction.includes(n));
    expect(inputs.length).toBeGreaterThan(0);
    expect(afterCompaction.some((n) => (parseSegmentName(n)?.gen ?? 0) > 0)).toBe(true);

    // A crash between the output's rename and the inputs' deletion, and one mid-write of an output.
    for (const name of inputs) await writeFile(join(dir, name), saved.get(name) as Buffer);
    await writeFile(join(dir, `${afterCompaction[0]}.tmp`), Buffer.alloc(100, 1));
    await writeFile(join(dir, 'gossip.meta.tmp'), '{"half":');

    const again = await openStore(opts);
    expect(again.stats().recovery).toMatchObject({ leftoversRemoved: inputs.length + 2, corruptions: [] });
    expect(await segFiles()).toEqual(afterCompaction);
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(await collect(again.replay(null))).toEqual(want);
    expect(again.stats().ids).toBe(wantIds);
  });
});

describe('close', () => {
  it('close - appends made before close settle accepted and survive a reopen', async () => {
    const store = await openStore({ fsync: 'never' });
    const pending = Array.from({ length: 100 }, (_, i) => store.append(`k${i}`, BigInt(i + 1), d(`v${i}`)));
    await store.close();
    const results = await Promise.all(pending);
    expect(results.every((r) => r.status === 'accepted')).toBe(true);
    const again = await openStore();
    expect(again.stats().ids).toBe(100);
  });

  it('close - a replay that goes on after close fails with GOSSIP_ERR_STORE_CLOSED', async () => {
    const store = await openStore();
    for (let i = 0; i < 100; i++) await store.append(`k${i}`, BigInt(i + 1), d('x'.repeat(50)));
    const it = store.replayBatches(null, { batchBytes: 256 })[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await store.close();
    await expectCode(it.next(), 'GOSSIP_ERR_STORE_CLOSED');
  });

  it('compact - a close at any step of a compaction loses nothing', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0, fsync: 'never' as const, tombstoneRetentionMs: 1 };
    const template = join(dir, 'template');
    const filling = await Store.open({ ...opts, dir: template });
    for (let i = 0; i < 120; i++) await filling.append(`k${i % 25}`, BigInt(i + 1), d(`v${i}`.padEnd(60, '.')));
    await filling.append('k3', 500n, EMPTY);
    for (let i = 0; i < 20; i++) await filling.append(`z${i}`, BigInt(1000 + i), d(`z${i}`.padEnd(60, '.')));
    const want = await collect(filling.replay(null));
    await filling.close();

    let outcomes = 0;
    for (let k = 0; k < 1000; k++) {
      const sub = join(dir, `k${k}`);
      await cp(template, sub, { recursive: true });
      let ops = -1;
      let closing: Promise<void> | undefined;
      let store: Store | undefined;
      const { fs } = trackingFs((op) => {
        if (ops < 0 || !store || op === 'read') return; // every mutating call, and every open
        if (ops++ === k) closing = store.close();
      });
      store = await Store.open({ ...opts, dir: sub, fs, now: () => 10n ** 18n });
      ops = 0;
      await store.compact().catch(() => undefined);
      await closing;
      await store.close();
      const again = await Store.open({ ...opts, dir: sub });
      const got = await collect(again.replay(null));
      // k3's tombstone may be dropped; nothing else may change.
      const withoutK3 = (rows: [string, bigint, string][]) => rows.filter(([id]) => id !== 'k3');
      expect(withoutK3(got), `close at step ${k}`).toEqual(withoutK3(want));
      expect(got.find(([id]) => id === 'k3') ?? ['k3', 500n, ''], `close at step ${k}`).toEqual(['k3', 500n, '']);
      expect(again.stats().recovery.corruptions).toEqual([]);
      expect(again.stats().recovery.truncatedBytes).toBe(0);
      await again.close();
      outcomes++;
      if (closing === undefined) break; // the compaction finished before step k
    }
    expect(outcomes).toBeGreaterThan(5);
  }, 60_000);

  it('compact - a compaction cut short by close settles with a GossipError or a result', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0, fsync: 'never' as const };
    let store: Store | undefined;
    let armed = false;
    let closing: Promise<void> | undefined;
    const { fs } = trackingFs((op, path) => {
      if (armed && store && op === 'open' && path.endsWith('.tmp')) {
        armed = false;
        closing = store.close();
      }
    });
    store = await Store.open({ ...opts, dir, fs });
    opened.push(store);
    for (let i = 0; i < 120; i++) await store.append(`k${i % 25}`, BigInt(i + 1), d(`v${i}`.padEnd(60, '.')));
    armed = true;
    const outcome = await store.compact().then(
      (r) => r,
      (e: unknown) => e,
    );
    await closing;
    expect(closing).toBeDefined();
    if (outcome instanceof Error) expect(outcome, String(outcome)).toBeInstanceOf(GossipError);
  });
});

describe('lock', () => {
  it('lock - a second open of the same folder rejects with GOSSIP_ERR_STORE_LOCKED', async () => {
    const store = await openStore();
    const error = await Store.open({ dir }).then(
      () => undefined,
      (e: unknown) => e as GossipError,
    );
    expect(error).toBeInstanceOf(GossipError);
    expect(error?.code).toBe('GOSSIP_ERR_STORE_LOCKED');
    expect(error?.message).toContain(String(process.pid));
    // The refused open left the holder's lock in place.
    expect((await readFile(join(dir, LOCK_FILE), 'utf8')).split(' ')[0]).toBe(String(process.pid));
    await store.append('a', 1n, d('x'));
    await store.close();
    const again = await openStore();
    expect(again.tsOf('a')).toBe(1n);
  });

  it('lock - a lock file naming a dead pid is taken over', async () => {
    const child = spawnSync(process.execPath, ['-e', '']);
    expect(child.status).toBe(0);
    const deadPid = child.pid as number;
    await writeFile(join(dir, LOCK_FILE), `${deadPid} 0123456789abcdef\n`);
    const store = await openStore();
    expect((await readFile(join(dir, LOCK_FILE), 'utf8')).split(' ')[0]).toBe(String(process.pid));
    await store.close();
    expect((await readdir(dir)).includes(LOCK_FILE)).toBe(false);
  });

  it('lock - an empty lock file (a crash before its pid was written) is taken over', async () => {
    await writeFile(join(dir, LOCK_FILE), '');
    const store = await openStore();
    expect((await readFile(join(dir, LOCK_FILE), 'utf8')).split(' ')[0]).toBe(String(process.pid));
    expect((await store.append('a', 1n, d('x'))).status).toBe('accepted');
  });

  it('open - an unreadable meta file rejects with GOSSIP_ERR_STORE_CORRUPT and releases the lock', async () => {
    const store = await openStore();
    await store.close();
    await writeFile(join(dir, 'gossip.meta'), '{"format": 1, "epo');
    await expectCode(Store.open({ dir }), 'GOSSIP_ERR_STORE_CORRUPT');
    expect((await readdir(dir)).includes(LOCK_FILE)).toBe(false);
  });

  it('lock - a lock of this process that no open store holds is taken over', async () => {
    await writeFile(join(dir, LOCK_FILE), `${process.pid} feedfacefeedface\n`);
    const store = await openStore();
    await store.append('a', 1n, d('x'));
    expect(store.tsOf('a')).toBe(1n);
  });
});

describe('epoch', () => {
  it('epoch - persists across reopen and differs between folders', async () => {
    const store = await openStore();
    const epoch = store.epoch;
    expect(isEpoch(epoch)).toBe(true);
    expect(store.stats().epoch).toBe(epoch);
    await store.close();
    const again = await openStore();
    expect(again.epoch).toBe(epoch);

    const other = await mkdtemp(join(tmpdir(), 'gossip-store-unit-other-'));
    try {
      const second = await Store.open({ dir: other });
      expect(second.epoch).not.toBe(epoch);
      await second.close();
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe('stats', () => {
  it('stats - ids, tombstones, deadRatio, newestTs and horizon', async () => {
    const opts = {
      segmentBytes: 1024,
      compactThreshold: 0,
      tombstoneRetentionMs: 1,
      now: () => 10n ** 18n,
    };
    const store = await openStore(opts);
    expect(store.stats()).toMatchObject({
      ids: 0,
      tombstones: 0,
      segments: 0,
      bytes: 0,
      liveBytes: 0,
      deadRatio: 0,
      newestTs: null,
      horizon: null,
      appends: 0,
      staleAppends: 0,
      compactions: 0,
      ioErrors: 0,
    });

    await store.append('a', 1n, d('x'.repeat(80)));
    await store.append('b', 2n, d('y'.repeat(80)));
    await store.append('c', 3n, d('z'.repeat(80)));
    await store.append('c', 4n, EMPTY);
    await store.append('c', 4n, EMPTY); // stale
    let s = store.stats();
    expect(s).toMatchObject({ ids: 3, tombstones: 1, newestTs: 4n, appends: 4, staleAppends: 1, horizon: null });
    expect(s.deadRatio).toBeGreaterThan(0);
    expect(s.deadRatio).toBeLessThan(1);
    expect(s.liveBytes).toBeLessThan(s.bytes);
    expect(store.newestTs).toBe(4n);

    // Supersede a and b many times, so the sealed segments are mostly dead.
    for (let i = 0; i < 30; i++) {
      await store.append('a', BigInt(10 + 2 * i), d('x'.repeat(80)));
      await store.append('b', BigInt(11 + 2 * i), d('y'.repeat(80)));
    }
    for (let i = 0; i < 10; i++) await store.append(`fresh-${i}`, BigInt(100 + i), d('f'.repeat(80)));
    const before = store.stats();
    expect(before.segments).toBeGreaterThan(3);
    expect(before.deadRatio).toBeGreaterThan(0.5);
    expect(before.deadRatio).toBeLessThan(1);

    const result = await store.compact();
    expect(result.tombstonesDropped).toBe(1);
    s = store.stats();
    expect(s.deadRatio).toBeGreaterThanOrEqual(0);
    expect(s.deadRatio).toBeLessThan(before.deadRatio);
    expect(s.segments).toBeLessThan(before.segments);
    expect(s).toMatchObject({ ids: 12, tombstones: 0, horizon: 4n, newestTs: 109n });
    expect(s.compactions).toBeGreaterThan(0);
    expect(s.compactedBytes).toBeGreaterThan(0);
    expect(store.horizon).toBe(4n);
    expect(await store.get('c')).toBeUndefined();
    // The id is unknown again: an older ts than the dropped tombstone is accepted.
    expect((await store.append('c', 2n, d('again'))).status).toBe('accepted');
    await store.close();

    const again = await openStore(opts);
    expect(again.stats()).toMatchObject({ ids: 13, tombstones: 0, horizon: 4n });
    expect((await again.get('c'))?.data.toString()).toBe('again');
    expect(again.stats().deadRatio).toBeGreaterThanOrEqual(0);
    expect(again.stats().deadRatio).toBeLessThan(1);
  });

  it('stats - a tombstone within retention is kept by compaction', async () => {
    const opts = { segmentBytes: 1024, compactThreshold: 0, tombstoneRetentionMs: 100, now: () => 1_000_000_000n };
    const store = await openStore(opts);
    await store.append('old', 1n, EMPTY); // older than now - 100 ms: droppable
    await store.append('young', 999_999_999n, EMPTY); // within retention: kept
    for (let i = 0; i < 30; i++) await store.append(`k${i}`, 1_000_000_000n + BigInt(i), d('v'.repeat(80)));
    const result = await store.compact();
    expect(result.tombstonesDropped).toBe(1);
    expect(store.tsOf('old')).toBeUndefined();
    expect(store.tsOf('young')).toBe(999_999_999n);
    expect(store.stats()).toMatchObject({ tombstones: 1, horizon: 1n });
  });

  it('copy of a log - a tombstone cutoff, not the retention, decides which tombstones compaction drops', async () => {
    let cutoff = 0n;
    const opts = { segmentBytes: 1024, compactThreshold: 0, tombstoneRetentionMs: 1, tombstoneCutoff: () => cutoff };
    const store = await openStore(opts);
    await store.append('a', 5n, EMPTY);
    await store.append('b', 9n, EMPTY);
    for (let i = 0; i < 30; i++) await store.append(`k${i}`, 100n + BigInt(i), d('v'.repeat(80)));
    expect((await store.compact()).tombstonesDropped).toBe(0); // the retention alone would drop both
    cutoff = 6n;
    for (let i = 0; i < 30; i++) await store.append(`k${i}`, 200n + BigInt(i), d('w'.repeat(80)));
    expect((await store.compact()).tombstonesDropped).toBe(1);
    expect(store.tsOf('a')).toBeUndefined();
    expect(store.tsOf('b')).toBe(9n);
    expect(store.horizon).toBe(5n);
  });

  it('copy of a log - raiseHorizon raises it durably and never lowers it', async () => {
    const store = await openStore();
    expect(store.horizon).toBeNull();
    await store.raiseHorizon(50n);
    await store.raiseHorizon(20n);
    expect(store.horizon).toBe(50n);
    await store.close();
    const again = await openStore();
    expect(again.horizon).toBe(50n);
  });

  it('copy of a log - a new folder takes the epoch it is given; one that exists keeps its own', async () => {
    const epoch = '0123456789abcdef0123456789abcdef';
    const store = await openStore({ epoch });
    expect(store.epoch).toBe(epoch);
    await store.close();
    const again = await openStore({ epoch: 'fedcba9876543210fedcba9876543210' });
    expect(again.epoch).toBe(epoch);
    await again.close();
    await rm(join(dir, 'gossip.meta'));
    await expectCode(openStore({ epoch: 'not-an-epoch' }), 'GOSSIP_ERR_INVALID_ARGUMENT');
  });

  it('flush - a flush with nothing to fsync leaves later flushes and background fsyncs working', async () => {
    // A fsync pass that found nothing dirty once stayed cached as settled: every later
    // flush() spun on it without end, and the background fsync never ran again.
    const store = await openStore({ fsync: 'interval', fsyncIntervalMs: 10 });
    await store.flush(); // nothing written: nothing to fsync
    for (let i = 0; i < 5; i++) {
      await store.append(`k${i}`, BigInt(i + 1), d('v'));
      // two at once: the second waits for the first's pass, then finds nothing dirty
      await Promise.all([store.flush(), store.flush()]);
    }
    await store.append('last', 100n, d('v'));
    // the background pass fsyncs it too, without a flush
    await new Promise((r) => setTimeout(r, 100));
    expect(store.stats()).toMatchObject({ ids: 6 });
    await store.flush();
  });
});
